//! The payments area: invoices, the payments made against them by card (Stripe) and bitcoin
//! (BTCPay Server), and one hash-chained ledger of every payment event.
//!
//! It owns its routes and their OpenAPI paths ([`api`]), its router builders (below, one per
//! deployable function), its audit actions ([`audit`]) and its configuration (the providers'
//! variables). It sits above the work area and asks it only through `work::facade` whether a
//! caller may see a project. Every provider's report goes through [`settle`], which moves
//! payments and invoices through the one pair of state machines in [`lifecycle`].

pub mod api;
pub mod audit;
pub mod btcpay;
pub mod dto;
pub mod invoices;
pub mod ledger;
pub mod lifecycle;
pub mod model;
pub mod money;
pub mod settle;
pub mod signature;
pub mod state;
pub mod stripe;
mod upstream;

pub use state::PaymentsState;

use crate::platform::{Platform, StartupError};
use axum::Router;
use axum::routing::{get, post};

/// `GET, POST /invoices`, `GET, PUT /invoices/{id}`.
pub fn invoices(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/invoices",
            get(api::list_invoices).post(api::create_invoice),
        )
        .route(
            "/invoices/{id}",
            get(api::get_invoice).put(api::update_invoice),
        )
        .with_state(PaymentsState::rows(platform)))
}

/// `GET /invoices/{id}/payments`.
pub fn invoice_payments(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/invoices/{id}/payments", get(api::list_payments))
        .with_state(PaymentsState::rows(platform)))
}

/// `POST /invoices/{id}/create-payment-intent`.
pub fn create_payment_intent(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/invoices/{id}/create-payment-intent",
            post(api::create_payment_intent),
        )
        .with_state(PaymentsState::with_stripe(platform)?))
}

/// `POST /stripe-webhook`.
pub fn stripe_webhook(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/stripe-webhook", post(api::stripe_webhook))
        .with_state(PaymentsState::with_stripe(platform)?))
}

/// `POST /invoices/{id}/create-btcpay-invoice`.
pub fn create_btcpay_invoice(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/invoices/{id}/create-btcpay-invoice",
            post(api::create_btcpay_invoice),
        )
        .with_state(PaymentsState::with_btcpay(platform)?))
}

/// `POST /btcpay-webhook`.
pub fn btcpay_webhook(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/btcpay-webhook", post(api::btcpay_webhook))
        .with_state(PaymentsState::with_btcpay(platform)?))
}
