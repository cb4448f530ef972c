//! The composition root: the areas in their layers, and the functions each contributes. Each
//! function is declared by the module that holds its handlers (or its worker); this file only
//! lists them, gathers every owner's purges for the housekeeping worker, and names each area's
//! part of the OpenAPI document. The only module that names the areas; the core (config,
//! runtime, errors, extractors, auth, stores, queue) never does.

use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Schedule, Trigger};
use crate::openapi::AreaDoc;
use crate::purge::Purge;
use crate::queue::housekeeping::{self, Housekeeping};
use crate::queue::signing;
use crate::{identity, mail, payments, relay, work};
use axum::Router;
use identity::{account, mfa, recovery, sessions, wallet};
use payments::{billing, btcpay, invoices, onchain, stripe};
use std::sync::Arc;
use utoipa::OpenApi;
use work::{documents, items, pins, projects};

/// Every deployable function, as in `functions/`, `template.yaml` and `stack.yml`.
pub static FUNCTIONS: &[&FunctionSpec] = &[
    // The core's workers.
    &HOUSEKEEPING,
    &mail::worker::MAILER,
    &relay::OUTBOX_RELAY,
    // identity
    &account::api::LINK_IDENTITY,
    &account::api::LOGIN,
    &account::api::PROFILE,
    &account::api::REGISTER,
    &account::api::UNLINK_IDENTITY,
    &account::api::USERS,
    &mfa::api::LOGIN_MFA,
    &mfa::api::MFA,
    &recovery::api::EMAIL_VERIFICATION,
    &recovery::api::PASSWORD,
    &sessions::api::JWKS,
    &sessions::api::SESSIONS,
    &sessions::api::TOKEN,
    &wallet::api::AUTH_NONCE,
    &wallet::api::LOGIN_BLOCKCHAIN,
    // work, above identity
    &documents::api::IPFS_GET,
    &documents::api::PIN_TO_IPFS,
    &items::api::PROJECT_TASKS,
    &items::api::PROJECT_WORK_ORDERS,
    &items::api::TASKS,
    &items::api::WORK_ORDERS,
    &pins::PIN_FOLLOW_UP,
    &projects::api::PROJECTS,
    // payments, above work
    &billing::api::BILLING_DETAILS,
    &billing::api::CREDIT_NOTES,
    &billing::api::INVOICE_DOCUMENTS,
    &billing::refunds::REFUNDS,
    &billing::render::BILLING_DOCUMENTS,
    &billing::reminders::BILLING_REMINDERS,
    &billing::reports::api::REPORTS,
    &btcpay::invoice::CREATE_BTCPAY_INVOICE,
    &btcpay::webhook::BTCPAY_WEBHOOK,
    &invoices::api::INVOICE_PAYMENTS,
    &invoices::api::INVOICES,
    &onchain::monitor::CHAIN_MONITOR,
    &onchain::payout::api::PAYOUTS,
    &onchain::submit::BLOCKCHAIN_PAYMENT,
    &payments::reconcile::RECONCILE,
    &payments::reconcile::RECONCILIATION,
    &stripe::intent::CREATE_PAYMENT_INTENT,
    &stripe::webhook::STRIPE_WEBHOOK,
];

/// Every owner's purges, for the housekeeping worker.
pub fn purges() -> impl Iterator<Item = Purge> {
    [
        crate::store::PURGES,
        crate::queue::PURGES,
        crate::mail::PURGES,
        identity::PURGES,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// The built-in queue worker: purges every owner's expired rows every 15 minutes.
pub static HOUSEKEEPING: FunctionSpec = FunctionSpec {
    name: housekeeping::QUEUE,
    trigger: Trigger::Queue {
        build: |platform| Ok(Arc::new(Housekeeping::new(platform.db.clone(), purges()))),
        schedule: Some(Schedule {
            minutes: 15,
            body: housekeeping::PURGE_EXPIRED,
            local_every: None,
            timeout_secs: None,
        }),
    },
    needs: &[&DATABASE, &signing::NEED],
};

/// Each area's tags and amendments to the OpenAPI document, in their layers.
const AREA_DOCS: &[AreaDoc] = &[
    AreaDoc {
        tags: identity::openapi::IdentityApi::openapi,
        amend: identity::openapi::add_links,
    },
    AreaDoc {
        tags: work::openapi::WorkApi::openapi,
        amend: work::openapi::add_links,
    },
    AreaDoc {
        tags: payments::openapi::PaymentsApi::openapi,
        amend: payments::openapi::add_links,
    },
];

/// The OpenAPI document of every function.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::openapi::document(FUNCTIONS, AREA_DOCS)
}

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn spec_json() -> String {
    crate::openapi::to_json(&openapi())
}

/// `GET /openapi.json`, served by the local gateway.
pub fn openapi_route() -> Router {
    Router::new().route(
        "/openapi.json",
        axum::routing::get(crate::openapi::serve(spec_json)),
    )
}

/// The gateway's routes (every HTTP function's, plus `GET /openapi.json`), not yet finished
/// with the shared stack: what the tests drive.
pub fn gateway_router(platform: &crate::Platform) -> Result<Router, crate::platform::StartupError> {
    Ok(crate::runtime::gateway::router(platform, FUNCTIONS)?.merge(openapi_route()))
}
