//! gantry: the one library every function is built from.
//!
//! - The **core** (`config`, `platform`, `runtime`, `function`, `need`, `error`, `extract`,
//!   `auth`, `store`, `queue`, `relay`, `mail`, `ipfs`, `chain`, `redact`, `signature`, `db`,
//!   `purge`, `audit`, `aws`, `domain`, `edge`, `tls`, `openapi`, `manifests`) never imports an
//!   area.
//! - Each **area** (`identity`, `work`, `payments`; stacked in that order) owns its functions
//!   (each declared beside its handlers or worker), its rules and tables, its errors, its audit
//!   actions and its configuration section.
//! - [`app`] is the composition root: the list of deployable functions, area by area.
//!   `functions/<name>/src/main.rs` names the function's declaration in its area and hands it
//!   to [`runtime::start`], which runs it under Lambda or plain HTTP.

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
