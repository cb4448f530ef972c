//! Card payments through Stripe: a PaymentIntent per invoice payment, and the webhook that
//! reports its fate.
//!
//! Why the REST API over the shared HTTP client and not async-stripe: async-stripe 1.0
//! (rc.10, with only `async-stripe-core`'s `payment_intent` feature and rustls-ring) builds here,
//! but its client alone makes a 12.2 MB binary (4.17 MB zipped) even with a narrow response
//! type: its error type deserialises Stripe's whole error object, which embeds the full
//! PaymentIntent, PaymentMethod, SetupIntent and Source types. Added to a function, that breaks
//! the 5 MB zip budget. The two calls used here are small form posts; the webhook's signature
//! scheme is Stripe's documented one (`signature::matches` does the HMAC).
//!
//! [`client`] holds the configuration and the REST calls; [`intent`] starts a card payment
//! (the `create-payment-intent` function); [`webhook`] reads Stripe's reports (the
//! `stripe-webhook` function); [`units`] converts amounts to Stripe's units and back.

pub mod client;
pub mod intent;
pub mod units;
pub mod webhook;

pub use client::Stripe;

pub const PROVIDER: &str = "stripe";
/// Stripe's default: a signature older (or newer) than this is refused.
pub const TOLERANCE_SECS: i64 = 300;

/// What a function that calls Stripe's API needs from its deployment.
pub const API_NEED: crate::function::Need = {
    use crate::function::{FaasValue, Need, SamValue, Var, optional, secret};
    Need {
        name: "stripe-api",
        can_be_unavailable: true,
        vars: &[
            Var {
                name: "STRIPE_SECRET_KEY",
                sam: optional(
                    "StripeSecretKey",
                    true,
                    "Stripe secret API key (sk_live_… or a restricted rk_… key with PaymentIntents write); empty turns card payments off (503)",
                ),
                openfaas: secret("gantry-stripe-secret-key"),
            },
            Var {
                name: "STRIPE_API_BASE",
                sam: SamValue::Unset,
                openfaas: FaasValue::Unset,
            },
        ],
        aws: &[],
    }
};

/// What the function that receives Stripe's webhooks needs from its deployment.
pub const WEBHOOK_NEED: crate::function::Need = {
    use crate::function::{Need, Var, optional, secret};
    Need {
        name: "stripe-webhook",
        can_be_unavailable: true,
        vars: &[Var {
            name: "STRIPE_WEBHOOK_SECRET",
            sam: optional(
                "StripeWebhookSecret",
                true,
                "The signing secret (whsec_…) of the Stripe webhook endpoint that points at /stripe-webhook",
            ),
            openfaas: secret("gantry-stripe-webhook-secret"),
        }],
        aws: &[],
    }
};
