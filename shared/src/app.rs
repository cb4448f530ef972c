//! The composition root: the table of every deployable function, the local gateway, and the
//! OpenAPI document merged from every area. The only module that names the areas; the core
//! (config, runtime, errors, extractors, auth, stores, queue) never does.

use crate::function::needs::{CHAIN_RPC, DATABASE, EPHEMERAL_TABLE, PRIVATE_KEY, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Schedule, Trigger, http};
use crate::identity;
use crate::platform::{Platform, StartupError};
use crate::queue::JobHandler;
use crate::queue::housekeeping::{self, Housekeeping};
use crate::queue::relay::{self, Relay};
use crate::queue::signing;
use crate::{payments, work};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

const SIWE: crate::function::Need = identity::config::SIWE_NEED;
const ACCOUNT_MAIL: crate::function::Need = identity::config::ACCOUNT_MAIL_NEED;
const MFA: crate::function::Need = identity::config::MFA_NEED;
const IPFS: crate::function::Need = crate::ipfs::config::NEED;
const STRIPE_API: crate::function::Need = payments::stripe::API_NEED;
const STRIPE_HOOK: crate::function::Need = payments::stripe::WEBHOOK_NEED;
const BTCPAY_API: crate::function::Need = payments::btcpay::API_NEED;
const BTCPAY_HOOK: crate::function::Need = payments::btcpay::WEBHOOK_NEED;

pub static AUTH_NONCE: FunctionSpec = FunctionSpec {
    name: "auth-nonce",
    resource: "AuthNonce",
    trigger: http::<identity::AuthNonce>(),
    needs: &[&SIWE],
    aws: &[],
};

pub static JWKS: FunctionSpec = FunctionSpec {
    name: "jwks",
    resource: "Jwks",
    trigger: http::<identity::Jwks>(),
    needs: &[&PUBLIC_KEYS],
    aws: &[],
};

pub static LINK_IDENTITY: FunctionSpec = FunctionSpec {
    name: "link-identity",
    resource: "LinkIdentity",
    trigger: http::<identity::LinkIdentity>(),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &SIWE,
        &CHAIN_RPC,
        &EPHEMERAL_TABLE,
        &ACCOUNT_MAIL,
    ],
    aws: &[],
};

pub static LOGIN: FunctionSpec = FunctionSpec {
    name: "login",
    resource: "Login",
    trigger: http::<identity::Login>(),
    needs: &[&DATABASE, &PRIVATE_KEY, &EPHEMERAL_TABLE, &ACCOUNT_MAIL],
    aws: &[],
};

pub static LOGIN_BLOCKCHAIN: FunctionSpec = FunctionSpec {
    name: "login-blockchain",
    resource: "LoginBlockchain",
    trigger: http::<identity::LoginBlockchain>(),
    needs: &[&DATABASE, &PRIVATE_KEY, &SIWE, &CHAIN_RPC, &EPHEMERAL_TABLE],
    aws: &[],
};

pub static PROFILE: FunctionSpec = FunctionSpec {
    name: "profile",
    resource: "Profile",
    trigger: http::<identity::Profile>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static REGISTER: FunctionSpec = FunctionSpec {
    name: "register",
    resource: "Register",
    trigger: http::<identity::Register>(),
    needs: &[
        &DATABASE,
        &PRIVATE_KEY,
        &SIWE,
        &CHAIN_RPC,
        &EPHEMERAL_TABLE,
        &ACCOUNT_MAIL,
    ],
    aws: &[],
};

pub static PASSWORD: FunctionSpec = FunctionSpec {
    name: "password",
    resource: "Password",
    trigger: http::<identity::Password>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &EPHEMERAL_TABLE, &ACCOUNT_MAIL],
    aws: &[],
};

pub static EMAIL_VERIFICATION: FunctionSpec = FunctionSpec {
    name: "email-verification",
    resource: "EmailVerification",
    trigger: http::<identity::EmailVerification>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &EPHEMERAL_TABLE, &ACCOUNT_MAIL],
    aws: &[],
};

pub static MFA_TOTP: FunctionSpec = FunctionSpec {
    name: "mfa",
    resource: "Mfa",
    trigger: http::<identity::Mfa>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &EPHEMERAL_TABLE, &MFA],
    aws: &[],
};

pub static LOGIN_MFA: FunctionSpec = FunctionSpec {
    name: "login-mfa",
    resource: "LoginMfa",
    trigger: http::<identity::LoginMfa>(),
    needs: &[&DATABASE, &PRIVATE_KEY, &EPHEMERAL_TABLE, &MFA],
    aws: &[],
};

pub static SESSIONS: FunctionSpec = FunctionSpec {
    name: "sessions",
    resource: "Sessions",
    trigger: http::<identity::Sessions>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static TOKEN: FunctionSpec = FunctionSpec {
    name: "token",
    resource: "Token",
    trigger: http::<identity::Token>(),
    needs: &[&DATABASE, &PRIVATE_KEY],
    aws: &[],
};

pub static UNLINK_IDENTITY: FunctionSpec = FunctionSpec {
    name: "unlink-identity",
    resource: "UnlinkIdentity",
    trigger: http::<identity::UnlinkIdentity>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static USERS: FunctionSpec = FunctionSpec {
    name: "users",
    resource: "Users",
    trigger: http::<identity::Users>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static PROJECTS: FunctionSpec = FunctionSpec {
    name: "projects",
    resource: "Projects",
    trigger: http::<work::Projects>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &IPFS],
    aws: &[],
};

pub static PROJECT_TASKS: FunctionSpec = FunctionSpec {
    name: "project-tasks",
    resource: "ProjectTasks",
    trigger: http::<work::ProjectTasks>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static TASKS: FunctionSpec = FunctionSpec {
    name: "tasks",
    resource: "Tasks",
    trigger: http::<work::Tasks>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static PROJECT_WORK_ORDERS: FunctionSpec = FunctionSpec {
    name: "project-work-orders",
    resource: "ProjectWorkOrders",
    trigger: http::<work::ProjectWorkOrders>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static WORK_ORDERS: FunctionSpec = FunctionSpec {
    name: "work-orders",
    resource: "WorkOrders",
    trigger: http::<work::WorkOrders>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static PIN_TO_IPFS: FunctionSpec = FunctionSpec {
    name: "pin-to-ipfs",
    resource: "PinToIpfs",
    trigger: http::<work::PinToIpfs>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &IPFS],
    aws: &[],
};

fn pin_follow_up_handler(platform: &Platform) -> Result<Arc<dyn JobHandler>, StartupError> {
    let config = crate::ipfs::IpfsConfig::from_env(&platform.env, crate::runtime::under_lambda())?;
    Ok(Arc::new(work::pins::PinFollowUp::new(
        platform.db.clone(),
        config.build(&platform.env),
    )))
}

/// Follows pins that a pinning service still had queued when their upload answered.
pub static PIN_FOLLOW_UP: FunctionSpec = FunctionSpec {
    name: work::pins::QUEUE,
    resource: "PinFollowUp",
    trigger: Trigger::Queue {
        build: pin_follow_up_handler,
        schedule: None,
    },
    needs: &[&DATABASE, &IPFS, &signing::NEED],
    aws: &[],
};

pub static IPFS_GET: FunctionSpec = FunctionSpec {
    name: "ipfs-get",
    resource: "IpfsGet",
    trigger: http::<work::IpfsGet>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &IPFS],
    aws: &[],
};

pub static INVOICES: FunctionSpec = FunctionSpec {
    name: "invoices",
    resource: "Invoices",
    trigger: http::<payments::Invoices>(),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &CHAIN_RPC,
        &payments::onchain::NEED,
    ],
    aws: &[],
};

pub static INVOICE_PAYMENTS: FunctionSpec = FunctionSpec {
    name: "invoice-payments",
    resource: "InvoicePayments",
    trigger: http::<payments::InvoicePayments>(),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static CREATE_PAYMENT_INTENT: FunctionSpec = FunctionSpec {
    name: "create-payment-intent",
    resource: "CreatePaymentIntent",
    trigger: http::<payments::CreatePaymentIntent>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &STRIPE_API],
    aws: &[],
};

pub static STRIPE_WEBHOOK: FunctionSpec = FunctionSpec {
    name: "stripe-webhook",
    resource: "StripeWebhook",
    trigger: http::<payments::StripeWebhook>(),
    needs: &[&DATABASE, &STRIPE_HOOK],
    aws: &[],
};

pub static CREATE_BTCPAY_INVOICE: FunctionSpec = FunctionSpec {
    name: "create-btcpay-invoice",
    resource: "CreateBtcpayInvoice",
    trigger: http::<payments::CreateBtcpayInvoice>(),
    needs: &[&DATABASE, &PUBLIC_KEYS, &BTCPAY_API],
    aws: &[],
};

pub static BTCPAY_WEBHOOK: FunctionSpec = FunctionSpec {
    name: "btcpay-webhook",
    resource: "BtcpayWebhook",
    trigger: http::<payments::BtcpayWebhook>(),
    needs: &[&DATABASE, &BTCPAY_API, &BTCPAY_HOOK],
    aws: &[],
};

pub static BLOCKCHAIN_PAYMENT: FunctionSpec = FunctionSpec {
    name: "blockchain-payment",
    resource: "BlockchainPayment",
    trigger: http::<payments::BlockchainPayment>(),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &CHAIN_RPC,
        &payments::onchain::NEED,
    ],
    aws: &[],
};

pub static PAYOUTS: FunctionSpec = FunctionSpec {
    name: "payouts",
    resource: "Payouts",
    trigger: http::<payments::Payouts>(),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &CHAIN_RPC,
        &payments::onchain::NEED,
        &payments::onchain::payout::NEED,
    ],
    aws: &[],
};

fn chain_monitor_handler(platform: &Platform) -> Result<Arc<dyn JobHandler>, StartupError> {
    Ok(Arc::new(payments::onchain::monitor::ChainMonitor::new(
        platform.db.clone(),
        Arc::new(payments::onchain::Chains::from_env(&platform.env)?),
        Arc::new(crate::chain::AlloyRpc::new(
            platform.config.chain_rpc_urls.clone(),
        )),
    )))
}

/// Watches submitted on-chain payments until they are final (one job per payment).
pub static CHAIN_MONITOR: FunctionSpec = FunctionSpec {
    name: payments::onchain::QUEUE,
    resource: "ChainMonitor",
    trigger: Trigger::Queue {
        build: chain_monitor_handler,
        schedule: None,
    },
    needs: &[
        &DATABASE,
        &CHAIN_RPC,
        &payments::onchain::NEED,
        &signing::NEED,
    ],
    aws: &[],
};

fn mailer_handler(platform: &Platform) -> Result<Arc<dyn JobHandler>, StartupError> {
    let transport = crate::mail::transport_from_env(&platform.env)?;
    Ok(Arc::new(crate::mail::Mailer::new(
        platform.db.clone(),
        transport,
    )))
}

/// Delivers the mail outbox (one job per mail).
pub static MAILER: FunctionSpec = FunctionSpec {
    name: crate::mail::QUEUE,
    resource: "Mailer",
    trigger: Trigger::Queue {
        build: mailer_handler,
        schedule: None,
    },
    needs: &[&DATABASE, &crate::mail::NEED, &signing::NEED],
    aws: &[],
};

/// Every owner's purges, for the housekeeping job.
pub fn purges() -> impl Iterator<Item = crate::purge::Purge> {
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

fn housekeeping_handler(platform: &Platform) -> Result<Arc<dyn JobHandler>, StartupError> {
    Ok(Arc::new(Housekeeping::new(platform.db.clone(), purges())))
}

/// The built-in queue worker: purges expired rows every 15 minutes.
pub static HOUSEKEEPING: FunctionSpec = FunctionSpec {
    name: housekeeping::QUEUE,
    resource: "Housekeeping",
    trigger: Trigger::Queue {
        build: housekeeping_handler,
        schedule: Some(Schedule {
            minutes: 15,
            body: housekeeping::PURGE_EXPIRED,
        }),
    },
    needs: &[&DATABASE, &signing::NEED],
    aws: &[],
};

fn relay_handler(platform: &Platform) -> Result<Arc<dyn JobHandler>, StartupError> {
    Ok(Arc::new(Relay::from_env(
        platform.db.clone(),
        &platform.env,
    )?))
}

/// The outbox relay: every minute, moves the jobs that changes committed to `queue_messages`
/// onto the deployment's transport (SQS, OpenFaaS); locally, where that table is the queue, it
/// has nothing to do.
pub static OUTBOX_RELAY: FunctionSpec = FunctionSpec {
    name: relay::QUEUE,
    resource: "OutboxRelay",
    trigger: Trigger::Queue {
        build: relay_handler,
        schedule: Some(Schedule {
            minutes: 1,
            body: relay::RELAY,
        }),
    },
    needs: &[&DATABASE, &relay::NEED, &signing::NEED],
    aws: &[],
};

/// Every deployable function, as in `functions/`, `template.yaml` and `stack.yml`.
pub static FUNCTIONS: &[&FunctionSpec] = &[
    &AUTH_NONCE,
    &BLOCKCHAIN_PAYMENT,
    &BTCPAY_WEBHOOK,
    &CHAIN_MONITOR,
    &CREATE_BTCPAY_INVOICE,
    &CREATE_PAYMENT_INTENT,
    &EMAIL_VERIFICATION,
    &HOUSEKEEPING,
    &INVOICE_PAYMENTS,
    &INVOICES,
    &IPFS_GET,
    &JWKS,
    &LINK_IDENTITY,
    &LOGIN,
    &LOGIN_BLOCKCHAIN,
    &LOGIN_MFA,
    &MAILER,
    &MFA_TOTP,
    &OUTBOX_RELAY,
    &PASSWORD,
    &PAYOUTS,
    &PIN_FOLLOW_UP,
    &PIN_TO_IPFS,
    &PROFILE,
    &PROJECT_TASKS,
    &PROJECT_WORK_ORDERS,
    &PROJECTS,
    &REGISTER,
    &SESSIONS,
    &STRIPE_WEBHOOK,
    &TASKS,
    &TOKEN,
    &UNLINK_IDENTITY,
    &USERS,
    &WORK_ORDERS,
];

/// The gateway's routes (every HTTP function's, plus `GET /openapi.json`), not yet finished
/// with the shared stack: what the tests drive.
pub fn gateway_router(platform: &Platform) -> Result<Router, StartupError> {
    Ok(crate::runtime::gateway_router(platform, FUNCTIONS)?.merge(openapi_route()))
}

/// `GET /openapi.json`, served by the local gateway.
pub fn openapi_route() -> Router {
    Router::new().route(
        "/openapi.json",
        axum::routing::get(crate::openapi::serve(spec_json)),
    )
}

/// The OpenAPI document: the core's part (health, security scheme), every area's tags, every
/// function's paths (read from its handlers' `#[utoipa::path]`s, as its router is), the
/// statuses the edge answers (a function that needs the database, a key or a provider can
/// answer 503) and the links between operations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = crate::openapi::CoreApi::openapi();
    doc.merge(identity::openapi::IdentityApi::openapi());
    doc.merge(work::api::WorkApi::openapi());
    doc.merge(payments::api::PaymentsApi::openapi());
    // (method, path) of every route whose function can answer 503.
    let mut dependent = Vec::new();
    for spec in FUNCTIONS {
        let Some(paths) = spec.openapi() else {
            continue;
        };
        if spec.needs.iter().any(|need| need.can_be_unavailable) {
            dependent.extend(spec.routes());
        }
        doc.merge(paths);
    }
    crate::openapi::add_edge_responses(&mut doc, |method, path| {
        let dependent = dependent.iter().any(|route| {
            route.path == path && route.method.http().as_str().eq_ignore_ascii_case(method)
        });
        crate::openapi::EdgeFacts { dependent }
    });
    identity::openapi::add_links(&mut doc);
    work::api::add_links(&mut doc);
    payments::api::add_links(&mut doc);
    crate::openapi::finish(doc)
}

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn spec_json() -> String {
    crate::openapi::to_json(&openapi())
}
