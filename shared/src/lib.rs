//! gantry: the one library every function is built from.
//!
//! - The **core** (`config`, `platform`, `runtime`, `function`, `need`, `error`, `extract`,
//!   `auth`, `store`, `queue`, `chain`, `redact`, `signature`, `db`, `purge`, `audit`, `aws`, `domain`,
//!   `edge`, `openapi`, `manifests`) never imports an area.
//! - Each **area** (`identity`, `work`, `payments`; stacked in that order) owns its routes and their
//!   OpenAPI paths, its errors, its audit actions and its configuration section.
//! - [`app`] is the composition root: the table of deployable functions, the gateway and the
//!   merged OpenAPI document. `functions/<name>/src/main.rs` hands its entry of that table to
//!   [`runtime::start`], which runs it under Lambda or plain HTTP.

pub mod app;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod chain;
pub mod config;
pub mod db;
pub mod domain;
pub mod edge;
pub mod error;
pub mod extract;
pub mod function;

pub mod identity;
pub mod ipfs;
pub mod mail;
pub mod manifests;
pub mod need;
pub mod openapi;
pub mod payments;
pub mod platform;
pub mod purge;
pub mod queue;
pub mod redact;
pub mod relay;
pub mod runtime;
pub mod signature;
pub mod store;
pub mod tls;
pub mod work;

pub use error::{AppError, AppResult};
pub use platform::Platform;

/// What a unit test returns, so failures propagate with `?` instead of `unwrap`.
#[cfg(test)]
pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;
