//! The composition root: the table of every deployable function, the local gateway, and the
//! OpenAPI document merged from every area. The only module that names the areas; the core
//! (config, runtime, errors, extractors, auth, stores, queue) never does.

use crate::function::needs::{CHAIN_RPC, DATABASE, PRIVATE_KEY, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Schedule, Trigger, delete, get, post, put};
use crate::identity;
use crate::platform::{Platform, StartupError};
use crate::queue::JobHandler;
use crate::store::housekeeping::{self, Housekeeping};
use crate::{payments, work};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

const SIWE: crate::function::Need = identity::config::SIWE_NEED;
const IPFS: crate::function::Need = crate::ipfs::config::NEED;
const STRIPE_API: crate::function::Need = payments::stripe::API_NEED;
const STRIPE_HOOK: crate::function::Need = payments::stripe::WEBHOOK_NEED;
const BTCPAY_API: crate::function::Need = payments::btcpay::API_NEED;
const BTCPAY_HOOK: crate::function::Need = payments::btcpay::WEBHOOK_NEED;

const fn http(
    routes: &'static [crate::function::Route],
    build: crate::function::BuildRouter,
) -> Trigger {
    Trigger::Http { routes, build }
}

pub static AUTH_NONCE: FunctionSpec = FunctionSpec {
    name: "auth-nonce",
    resource: "AuthNonce",
    trigger: http(&[post("/auth/nonce")], identity::auth_nonce),
    needs: &[&SIWE],
    aws: &[],
};

pub static JWKS: FunctionSpec = FunctionSpec {
    name: "jwks",
    resource: "Jwks",
    trigger: http(&[get("/.well-known/jwks.json")], identity::jwks),
    needs: &[&PUBLIC_KEYS],
    aws: &[],
};

pub static LINK_IDENTITY: FunctionSpec = FunctionSpec {
    name: "link-identity",
    resource: "LinkIdentity",
    trigger: http(&[post("/link-identity")], identity::link_identity),
    needs: &[&DATABASE, &PUBLIC_KEYS, &SIWE, &CHAIN_RPC],
    aws: &[],
};

pub static LOGIN: FunctionSpec = FunctionSpec {
    name: "login",
    resource: "Login",
    trigger: http(&[post("/login-email-password")], identity::login),
    needs: &[&DATABASE, &PRIVATE_KEY],
    aws: &[],
};

pub static LOGIN_BLOCKCHAIN: FunctionSpec = FunctionSpec {
    name: "login-blockchain",
    resource: "LoginBlockchain",
    trigger: http(&[post("/login-blockchain")], identity::login_blockchain),
    needs: &[&DATABASE, &PRIVATE_KEY, &SIWE, &CHAIN_RPC],
    aws: &[],
};

pub static PROFILE: FunctionSpec = FunctionSpec {
    name: "profile",
    resource: "Profile",
    trigger: http(&[get("/profile")], identity::profile),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static REGISTER: FunctionSpec = FunctionSpec {
    name: "register",
    resource: "Register",
    trigger: http(
        &[
            post("/register-email-password"),
            post("/register-blockchain"),
        ],
        identity::register,
    ),
    needs: &[&DATABASE, &PRIVATE_KEY, &SIWE, &CHAIN_RPC],
    aws: &[],
};

pub static TOKEN: FunctionSpec = FunctionSpec {
    name: "token",
    resource: "Token",
    trigger: http(&[post("/token/refresh"), post("/logout")], identity::token),
    needs: &[&DATABASE, &PRIVATE_KEY],
    aws: &[],
};

pub static UNLINK_IDENTITY: FunctionSpec = FunctionSpec {
    name: "unlink-identity",
    resource: "UnlinkIdentity",
    trigger: http(&[post("/unlink-identity")], identity::unlink_identity),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static USERS: FunctionSpec = FunctionSpec {
    name: "users",
    resource: "Users",
    trigger: http(&[get("/users"), put("/users/{id}/role")], identity::users),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static PROJECTS: FunctionSpec = FunctionSpec {
    name: "projects",
    resource: "Projects",
    trigger: http(
        &[
            get("/projects"),
            post("/projects"),
            get("/projects/{id}"),
            put("/projects/{id}"),
            delete("/projects/{id}"),
        ],
        work::projects,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS, &IPFS],
    aws: &[],
};

pub static PROJECT_TASKS: FunctionSpec = FunctionSpec {
    name: "project-tasks",
    resource: "ProjectTasks",
    trigger: http(
        &[get("/projects/{id}/tasks"), post("/projects/{id}/tasks")],
        work::project_tasks,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static TASKS: FunctionSpec = FunctionSpec {
    name: "tasks",
    resource: "Tasks",
    trigger: http(
        &[
            get("/tasks/{id}"),
            put("/tasks/{id}"),
            delete("/tasks/{id}"),
        ],
        work::tasks,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static PROJECT_WORK_ORDERS: FunctionSpec = FunctionSpec {
    name: "project-work-orders",
    resource: "ProjectWorkOrders",
    trigger: http(
        &[
            get("/projects/{id}/work-orders"),
            post("/projects/{id}/work-orders"),
        ],
        work::project_work_orders,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static WORK_ORDERS: FunctionSpec = FunctionSpec {
    name: "work-orders",
    resource: "WorkOrders",
    trigger: http(
        &[
            get("/work-orders/{id}"),
            put("/work-orders/{id}"),
            delete("/work-orders/{id}"),
        ],
        work::work_orders,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static PIN_TO_IPFS: FunctionSpec = FunctionSpec {
    name: "pin-to-ipfs",
    resource: "PinToIpfs",
    trigger: http(&[post("/ipfs")], work::pin_to_ipfs),
    needs: &[&DATABASE, &PUBLIC_KEYS, &IPFS],
    aws: &[],
};

pub static IPFS_GET: FunctionSpec = FunctionSpec {
    name: "ipfs-get",
    resource: "IpfsGet",
    trigger: http(&[get("/ipfs/{cid}")], work::ipfs_get),
    needs: &[&DATABASE, &PUBLIC_KEYS, &IPFS],
    aws: &[],
};

pub static INVOICES: FunctionSpec = FunctionSpec {
    name: "invoices",
    resource: "Invoices",
    trigger: http(
        &[
            get("/invoices"),
            post("/invoices"),
            get("/invoices/{id}"),
            put("/invoices/{id}"),
        ],
        payments::invoices,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static INVOICE_PAYMENTS: FunctionSpec = FunctionSpec {
    name: "invoice-payments",
    resource: "InvoicePayments",
    trigger: http(
        &[get("/invoices/{id}/payments")],
        payments::invoice_payments,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS],
    aws: &[],
};

pub static CREATE_PAYMENT_INTENT: FunctionSpec = FunctionSpec {
    name: "create-payment-intent",
    resource: "CreatePaymentIntent",
    trigger: http(
        &[post("/invoices/{id}/create-payment-intent")],
        payments::create_payment_intent,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS, &STRIPE_API],
    aws: &[],
};

pub static STRIPE_WEBHOOK: FunctionSpec = FunctionSpec {
    name: "stripe-webhook",
    resource: "StripeWebhook",
    trigger: http(&[post("/stripe-webhook")], payments::stripe_webhook),
    needs: &[&DATABASE, &STRIPE_HOOK],
    aws: &[],
};

pub static CREATE_BTCPAY_INVOICE: FunctionSpec = FunctionSpec {
    name: "create-btcpay-invoice",
    resource: "CreateBtcpayInvoice",
    trigger: http(
        &[post("/invoices/{id}/create-btcpay-invoice")],
        payments::create_btcpay_invoice,
    ),
    needs: &[&DATABASE, &PUBLIC_KEYS, &BTCPAY_API],
    aws: &[],
};

pub static BTCPAY_WEBHOOK: FunctionSpec = FunctionSpec {
    name: "btcpay-webhook",
    resource: "BtcpayWebhook",
    trigger: http(&[post("/btcpay-webhook")], payments::btcpay_webhook),
    needs: &[&DATABASE, &BTCPAY_API, &BTCPAY_HOOK],
    aws: &[],
};

/// Every owner's purges, for the housekeeping job.
pub fn purges() -> impl Iterator<Item = housekeeping::Purge> {
    [crate::store::PURGES, crate::queue::PURGES, identity::PURGES]
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
    needs: &[&DATABASE],
    aws: &[],
};

/// Every deployable function, as in `functions/`, `template.yaml` and `stack.yml`.
pub static FUNCTIONS: &[&FunctionSpec] = &[
    &AUTH_NONCE,
    &BTCPAY_WEBHOOK,
    &CREATE_BTCPAY_INVOICE,
    &CREATE_PAYMENT_INTENT,
    &HOUSEKEEPING,
    &INVOICE_PAYMENTS,
    &INVOICES,
    &IPFS_GET,
    &JWKS,
    &LINK_IDENTITY,
    &LOGIN,
    &LOGIN_BLOCKCHAIN,
    &PIN_TO_IPFS,
    &PROFILE,
    &PROJECT_TASKS,
    &PROJECT_WORK_ORDERS,
    &PROJECTS,
    &REGISTER,
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

/// The OpenAPI document: the core's part (health, security scheme) merged with every area's,
/// with the statuses the edge answers (from the function table: a function that needs the
/// database, a key or a chain can answer 503) and the links between operations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = crate::openapi::CoreApi::openapi();
    doc.merge(identity::api::IdentityApi::openapi());
    doc.merge(work::api::WorkApi::openapi());
    doc.merge(payments::api::PaymentsApi::openapi());
    crate::openapi::add_edge_responses(&mut doc, |method, path| {
        let dependent = FUNCTIONS.iter().any(|spec| {
            spec.routes().iter().any(|route| {
                route.path == path && route.method.http().as_str().eq_ignore_ascii_case(method)
            }) && spec.needs.iter().any(|need| need.can_be_unavailable)
        });
        crate::openapi::EdgeFacts { dependent }
    });
    identity::api::add_links(&mut doc);
    work::api::add_links(&mut doc);
    payments::api::add_links(&mut doc);
    crate::openapi::finish(doc)
}

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn spec_json() -> String {
    crate::openapi::to_json(&openapi())
}
