//! The work-management area: projects, their tasks and work orders, and the
//! content-addressed documents stored on IPFS.
//!
//! Each capability ([`projects`], [`items`], [`documents`]) holds its rules, and in its `api`
//! the functions that serve them with their handlers; [`pins`] holds the pin follow-up worker.
//! The area also owns its OpenAPI tags ([`openapi`]), its access rules ([`access`]), its audit actions ([`audit`]) and its
//! configuration (the IPFS backend). The core never imports it; the areas above it (payments)
//! use only [`facade`].

pub mod access;
pub mod audit;
pub mod documents;
pub mod dto;
pub mod error;
pub mod facade;
pub mod items;
pub mod model;
pub mod openapi;
pub mod pins;
pub mod projects;
pub mod state;

pub use error::WorkError;
pub use state::WorkState;
