//! Accounts, identities and sessions: the rules behind /register-*, /login-*, /profile,
//! /token/refresh, /logout and /users.

pub mod dto;
pub mod handlers;
pub mod service;
pub mod session;
