//! The payments area: invoices, the payments made against them by card (Stripe) and bitcoin
//! (BTCPay Server), and one hash-chained ledger of every payment event.
//!
//! It owns its routes and their OpenAPI paths ([`api`]), its HTTP functions (below, one `HttpApi` per
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
pub mod onchain;
pub mod settle;
/// The HMAC signatures of Stripe and BTCPay webhooks (a core module: jobs are signed alike).
pub use crate::signature;
pub mod state;
pub mod stripe;
pub mod stripe_units;
mod upstream;

pub use state::PaymentsState;

use crate::endpoint;
use crate::function::{Endpoint, HttpApi};
use crate::platform::{Platform, StartupError};

/// `invoices`: the invoices themselves.
pub struct Invoices;

impl HttpApi for Invoices {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[
        endpoint!(api::list_invoices),
        endpoint!(api::create_invoice),
        endpoint!(api::get_invoice),
        endpoint!(api::update_invoice),
    ];
    /// The chains too, for each invoice's payment URI.
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        PaymentsState::with_chains(platform)
    }
}

/// `invoice-payments`: the payments made against an invoice.
pub struct InvoicePayments;

impl HttpApi for InvoicePayments {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[endpoint!(api::list_payments)];
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        Ok(PaymentsState::rows(platform))
    }
}

/// `create-payment-intent`: a Stripe PaymentIntent for an invoice.
pub struct CreatePaymentIntent;

impl HttpApi for CreatePaymentIntent {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[endpoint!(api::create_payment_intent)];
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        PaymentsState::with_stripe(platform)
    }
}

/// `stripe-webhook`: Stripe's event deliveries.
pub struct StripeWebhook;

impl HttpApi for StripeWebhook {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[endpoint!(api::stripe_webhook)];
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        PaymentsState::with_stripe(platform)
    }
}

/// `create-btcpay-invoice`: a BTCPay Server invoice (checkout) for an invoice.
pub struct CreateBtcpayInvoice;

impl HttpApi for CreateBtcpayInvoice {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[endpoint!(api::create_btcpay_invoice)];
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        PaymentsState::with_btcpay(platform)
    }
}

/// `btcpay-webhook`: BTCPay Server's webhook deliveries.
pub struct BtcpayWebhook;

impl HttpApi for BtcpayWebhook {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[endpoint!(api::btcpay_webhook)];
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        PaymentsState::with_btcpay(platform)
    }
}

/// `blockchain-payment`: a transaction that pays an invoice on a chain, to be watched.
pub struct BlockchainPayment;

impl HttpApi for BlockchainPayment {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[endpoint!(api::blockchain_payment)];
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        PaymentsState::with_chains(platform)
    }
}

/// `payouts`: on-chain payouts (ADMIN).
pub struct Payouts;

impl HttpApi for Payouts {
    type State = PaymentsState;
    const ENDPOINTS: &'static [Endpoint<PaymentsState>] = &[endpoint!(api::create_payout)];
    fn state(platform: &Platform) -> Result<PaymentsState, StartupError> {
        PaymentsState::with_payouts(platform)
    }
}
