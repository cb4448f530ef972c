//! Accounts, identities and sessions: the rules behind /register-*, /login-*, /profile,
//! /token/refresh, /logout and /users.

pub mod abuse;
pub mod dto;
pub mod handlers;
pub mod links;
pub mod service;
pub mod session;
pub mod siwe;
pub mod wallet;
