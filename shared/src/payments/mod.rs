//! The payments area: invoices, the payments made against them by card (Stripe) and bitcoin
//! (BTCPay Server), and one hash-chained ledger of every payment event.
//!
//! Each capability declares the functions that serve it beside their handlers:
//! [`invoices::api`], [`stripe::intent`] and [`stripe::webhook`], [`btcpay::invoice`] and
//! [`btcpay::webhook`], [`onchain::submit`], [`onchain::payout`] and the [`onchain::monitor`]
//! worker. The area also owns its OpenAPI tag and links ([`openapi`]), its audit actions ([`audit`]) and its configuration (the providers'
//! variables). It sits above the work area and asks it only through `work::facade` whether a
//! caller may see a project. Every provider's report goes through [`settle`], which moves
//! payments and invoices through the one pair of state machines in [`lifecycle`].

pub mod audit;
pub mod billing;
pub mod btcpay;
pub mod dto;
pub mod error;
pub mod invoices;
pub mod ledger;
pub mod lifecycle;
pub mod model;
pub mod money;
pub mod onchain;
pub mod openapi;
pub mod reconcile;
pub mod settle;
/// The HMAC signatures of Stripe and BTCPay webhooks (a core module: jobs are signed alike).
pub use crate::signature;
pub mod state;
pub mod stripe;
mod upstream;

pub use error::PaymentsError;
pub use state::PaymentsState;

use axum::http::HeaderMap;

/// The 404 every invoice route answers for an invoice the caller may not see.
pub(crate) const NOT_VISIBLE: &str = "No such invoice, or not the caller's to see";

/// A request header as text (`None` when absent or not visible ASCII).
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
