//! gantry: the one library every function is built from.
//!
//! A route's rule lives here once; `functions/<name>/src/main.rs` only hands the matching
//! router from [`routes`] to [`runtime::serve`], which runs it under Lambda or plain HTTP.

pub mod audit;
pub mod auth;
pub mod chain;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod identity;
pub mod openapi;
pub mod routes;
pub mod runtime;
pub mod state;
pub mod store;

pub use error::{AppError, AppResult};
pub use state::AppState;

/// What a unit test returns, so failures propagate with `?` instead of `unwrap`.
#[cfg(test)]
pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;
