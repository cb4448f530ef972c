//! Bitcoin payments through a BTCPay Server store, over its Greenfield API (no maintained Rust
//! crate exists for it; these are four documented JSON calls over the shared HTTP client).
//!
//! A BTCPay invoice is opened per payment of ours, with `orderId` = our invoice's id. Its
//! webhook is verified (`BTCPay-Sig: sha256=<hex HMAC of the body>`), deduplicated on the
//! original delivery id, and never trusted for money: on `InvoiceSettled` the invoice is fetched
//! again and credited only when BTCPay itself says it is Settled for our amount and currency.
//!
//! BTCPay books what it received, so we do too. When the invoice BTCPay answers was paid
//! partly, late or over (`additionalStatus` PaidPartial, PaidLate, PaidOver, or an expiry that
//! says `partiallyPaid`), on `InvoiceSettled`, `InvoicePaymentSettled`, `InvoiceExpired` or
//! `InvoiceInvalid`, its payment methods are fetched too: the payments BTCPay counts as Settled
//! (confirmed), each method's `value`s times its `rate` (the invoice currency per unit), summed
//! and rounded down to the currency's minor unit, are recorded as what the payment paid (as on
//! chain: [`Report::records_amount`]). An under-payment leaves the rest due; an unconfirmed
//! payment counts for nothing until a later delivery finds it Settled. Each delivery reads
//! BTCPay's state as it is then, so a redelivery or one out of order records the same.//!
//! [`client`] holds the configuration and the Greenfield calls; [`invoice`] opens a BTCPay
//! invoice (the `create-btcpay-invoice` function); [`webhook`] reads BTCPay's deliveries (the
//! `btcpay-webhook` function).

pub mod client;
pub mod invoice;
pub mod webhook;

pub use client::Btcpay;

pub const PROVIDER: &str = "btcpay";

/// What a function that calls BTCPay Server's Greenfield API needs from its deployment.
pub const API_NEED: crate::function::Need = {
    use crate::function::{Need, Var, optional, secret};
    Need {
        name: "btcpay-api",
        can_be_unavailable: true,
        vars: &[
            Var {
                name: "BTCPAY_URL",
                sam: optional(
                    "BtcpayUrl",
                    false,
                    "BTCPay Server's base URL, e.g. https://btcpay.example.com; empty turns bitcoin payments off (503)",
                ),
                openfaas: secret("gantry-btcpay-url"),
            },
            Var {
                name: "BTCPAY_STORE_ID",
                sam: optional(
                    "BtcpayStoreId",
                    false,
                    "The BTCPay store that invoices are made in",
                ),
                openfaas: secret("gantry-btcpay-store-id"),
            },
            Var {
                name: "BTCPAY_API_KEY",
                sam: optional(
                    "BtcpayApiKey",
                    true,
                    "A Greenfield API key of that store with btcpay.store.cancreateinvoice and btcpay.store.canviewinvoices",
                ),
                openfaas: secret("gantry-btcpay-api-key"),
            },
        ],
        aws: &[],
    }
};

/// What the function that receives BTCPay's webhooks needs besides the API.
pub const WEBHOOK_NEED: crate::function::Need = {
    use crate::function::{Need, Var, optional, secret};
    Need {
        name: "btcpay-webhook",
        can_be_unavailable: true,
        vars: &[Var {
            name: "BTCPAY_WEBHOOK_SECRET",
            sam: optional(
                "BtcpayWebhookSecret",
                true,
                "The secret of the store's webhook that points at /btcpay-webhook",
            ),
            openfaas: secret("gantry-btcpay-webhook-secret"),
        }],
        aws: &[],
    }
};
