//! What a deployable function is: a name, a trigger, and what it needs from its deployment.
//! The table of every function (`crate::app::FUNCTIONS`) is made of these; the runtime serves
//! one, the gateway mounts them all, and `gantry manifests` writes template.yaml and stack.yml
//! from them, so the lists cannot drift apart.

use crate::platform::{Platform, StartupError};
use crate::queue::JobHandler;
use axum::Router;
use axum::routing::{MethodFilter, MethodRouter};
use serde::Serialize;
use std::sync::Arc;
use utoipa::openapi::path::HttpMethod;
use utoipa_axum::PathItemExt;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// Builds an HTTP function's router from the platform.
pub type BuildRouter = fn(&Platform) -> Result<Router, StartupError>;
/// Builds a queue worker's handler from the platform.
pub type BuildHandler = fn(&Platform) -> Result<Arc<dyn JobHandler>, StartupError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn http(self) -> axum::http::Method {
        match self {
            Self::Get => axum::http::Method::GET,
            Self::Post => axum::http::Method::POST,
            Self::Put => axum::http::Method::PUT,
            Self::Delete => axum::http::Method::DELETE,
        }
    }
}

impl Method {
    fn of(method: &HttpMethod) -> Option<Self> {
        match method {
            HttpMethod::Get => Some(Self::Get),
            HttpMethod::Post => Some(Self::Post),
            HttpMethod::Put => Some(Self::Put),
            HttpMethod::Delete => Some(Self::Delete),
            _ => None,
        }
    }
}

/// One public route, as its handler's `#[utoipa::path]` declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub method: Method,
    pub path: String,
}

/// One handler of an HTTP function, made by [`endpoint!`](crate::endpoint) from its name: the
/// method and path are those of its `#[utoipa::path]`, written once there.
///
/// Routing reads only the path and methods, which cost nothing at start; the OpenAPI operation
/// (descriptions, schemas) is built only when the document is (utoipa-axum's `routes!`). A
/// function that built it at start measured 0.1–0.2× the floor slower to start.
pub struct Endpoint<S: 'static> {
    pub path: fn() -> String,
    pub methods: fn() -> Vec<HttpMethod>,
    /// The handler for one method.
    pub route: fn(MethodFilter) -> MethodRouter<S>,
    /// The handler with its OpenAPI path item and schemas.
    pub openapi: fn() -> UtoipaMethodRouter<S>,
}

/// An [`Endpoint`] for a handler annotated with `#[utoipa::path]`, named with its module:
/// `endpoint!(api::login)`.
#[macro_export]
macro_rules! endpoint {
    ($module:ident :: $handler:ident) => {
        ::pastey::paste! {
            $crate::function::Endpoint {
                path: <$module:: [<__path_ $handler>] as ::utoipa::Path>::path,
                methods: <$module:: [<__path_ $handler>] as ::utoipa::Path>::methods,
                route: |filter| ::axum::routing::on(filter, $module:: $handler),
                openapi: || ::utoipa_axum::routes!($module:: $handler),
            }
        }
    };
}

/// An HTTP function: its handlers and the state they share. Each handler's method and path are
/// written once, in its `#[utoipa::path]`: the router, the OpenAPI document, CORS, the SAM
/// events and the 503 list are all read from there.
pub trait HttpApi: 'static {
    type State: Clone + Send + Sync + 'static;

    /// The handlers, each made by [`endpoint!`](crate::endpoint).
    const ENDPOINTS: &'static [Endpoint<Self::State>];

    /// Their shared state, from the platform (a missing setting is a [`StartupError`]).
    fn state(platform: &Platform) -> Result<Self::State, StartupError>;

    /// Layers of this function's own (a body limit of its own, say).
    fn layer(router: Router<Self::State>) -> Router<Self::State> {
        router
    }
}

/// The trigger of an HTTP function made of `A`'s endpoints.
pub const fn http<A: HttpApi>() -> Trigger {
    Trigger::Http {
        openapi: openapi_of::<A>,
        routes: routes_of::<A>,
        build: build_of::<A>,
    }
}

fn openapi_of<A: HttpApi>() -> utoipa::openapi::OpenApi {
    let router = A::ENDPOINTS
        .iter()
        .fold(OpenApiRouter::new(), |router, endpoint| {
            router.routes((endpoint.openapi)())
        });
    router.into_openapi()
}

fn routes_of<A: HttpApi>() -> Vec<Route> {
    let mut routes = Vec::new();
    for endpoint in A::ENDPOINTS {
        let path = (endpoint.path)();
        for method in (endpoint.methods)().iter().filter_map(Method::of) {
            routes.push(Route {
                method,
                path: path.clone(),
            });
        }
    }
    routes
}

fn build_of<A: HttpApi>(platform: &Platform) -> Result<Router, StartupError> {
    let mut router = Router::new();
    for endpoint in A::ENDPOINTS {
        let path = (endpoint.path)();
        for method in (endpoint.methods)() {
            router = router.route(&path, (endpoint.route)(method.to_method_filter()));
        }
    }
    Ok(A::layer(router).with_state(A::state(platform)?))
}

/// When a queue is fed on a schedule: every `minutes`, the message `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub minutes: u32,
    pub body: &'static str,
}

#[derive(Clone, Copy)]
pub enum Trigger {
    /// API Gateway routes under Lambda; plain HTTP on `$PORT` otherwise.
    /// (Made by [`http`].)
    Http {
        /// The function's part of the OpenAPI document: its paths and their schemas.
        openapi: fn() -> utoipa::openapi::OpenApi,
        routes: fn() -> Vec<Route>,
        build: BuildRouter,
    },
    /// An SQS queue under Lambda; `POST /` per message over HTTP (OpenFaaS async); the Postgres
    /// queue in the local gateway. The queue has the function's name.
    Queue {
        build: BuildHandler,
        schedule: Option<Schedule>,
    },
}

/// A secret or setting group a function's deployment must provide, declared as data by the
/// module that reads it (the core, or an area): its variables, how each is given under SAM and
/// under OpenFaaS, the AWS access it brings, and whether its routes answer 503 while it is down
/// or missing. `scripts/gen-manifests` (through `gantry functions`), the OpenAPI 503s and the
/// cold-start benchmark read these declarations; none of them branches on a need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Need {
    /// Short and unique: `database`, `stripe`.
    pub name: &'static str,
    /// Its routes answer 503 while it is down or not configured.
    pub can_be_unavailable: bool,
    pub vars: &'static [Var],
    /// What the function's AWS role may do because of it.
    pub aws: &'static [AwsAccess],
}

/// One variable of a [`Need`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Var {
    pub name: &'static str,
    pub sam: SamValue,
    pub openfaas: FaasValue,
}

/// How template.yaml gives a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SamValue {
    /// A stack parameter (`NoEcho` when `secret`); with a default, deploying without it works.
    Parameter {
        name: &'static str,
        secret: bool,
        default: Option<&'static str>,
        description: &'static str,
    },
    /// A value the stack fixes (YAML, such as `s3` or `!Ref DocumentsBucket`).
    Fixed { value: &'static str },
    /// Not set under SAM (the code's default applies).
    Unset,
}

/// How stack.yml gives a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaasValue {
    /// An OpenFaaS secret of this name, read through `<NAME>_FILE`.
    Secret { name: &'static str },
    /// A plain value (an example the operator edits, or a fixed choice).
    Value { value: &'static str },
    /// Not set under OpenFaaS (the code's default applies).
    Unset,
}

/// A stack parameter that must be given (no default).
pub const fn required(name: &'static str, secret: bool, description: &'static str) -> SamValue {
    SamValue::Parameter {
        name,
        secret,
        default: None,
        description,
    }
}

/// A stack parameter that may be left empty.
pub const fn optional(name: &'static str, secret: bool, description: &'static str) -> SamValue {
    SamValue::Parameter {
        name,
        secret,
        default: Some(""),
        description,
    }
}

/// An OpenFaaS secret.
pub const fn secret(name: &'static str) -> FaasValue {
    FaasValue::Secret { name }
}

/// The core's needs; areas declare theirs beside their configuration.
pub mod needs {
    use super::{Need, Var, optional, required, secret};

    pub const DATABASE: Need = Need {
        name: "database",
        can_be_unavailable: true,
        vars: &[Var {
            name: "DATABASE_URL",
            sam: required(
                "DatabaseUrl",
                true,
                "Postgres URL, e.g. postgres://gantry:secret@host:5432/gantry?sslmode=require",
            ),
            openfaas: secret("gantry-database-url"),
        }],
        aws: &[],
    };

    /// The function issues tokens.
    pub const PRIVATE_KEY: Need = Need {
        name: "private-key",
        can_be_unavailable: true,
        vars: &[Var {
            name: "JWT_PRIVATE_KEY",
            sam: required(
                "JwtPrivateKey",
                true,
                "PKCS#8 PEM Ed25519 key with newlines as \\n (JWT_PRIVATE_KEY from `gantry keygen`). Only token-issuing functions receive it.",
            ),
            openfaas: secret("gantry-jwt-private-key"),
        }],
        aws: &[],
    };

    /// The function verifies tokens issued elsewhere.
    pub const PUBLIC_KEYS: Need = Need {
        name: "public-keys",
        can_be_unavailable: false,
        vars: &[Var {
            name: "JWT_PUBLIC_KEYS",
            sam: required(
                "JwtPublicKeys",
                false,
                "JWKS of every key that may verify access tokens (JWT_PUBLIC_KEYS from `gantry keygen`).",
            ),
            openfaas: secret("gantry-jwt-public-keys"),
        }],
        aws: &[],
    };

    /// The function calls a chain (EIP-1271 contract wallets).
    pub const CHAIN_RPC: Need = Need {
        name: "chain-rpc",
        can_be_unavailable: true,
        vars: &[Var {
            name: "CHAIN_RPC_URLS",
            sam: optional(
                "ChainRpcUrls",
                true,
                "chain_id=url pairs for EIP-1271 contract-wallet checks, e.g. 1=https://rpc.example",
            ),
            openfaas: secret("gantry-chain-rpc-urls"),
        }],
        aws: &[],
    };
}

/// An AWS permission a function's role needs beyond logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AwsAccess {
    SendToQueue {
        queue: &'static str,
    },
    /// The stack's documents bucket: read-only for a function whose routes are all GETs, read
    /// and write otherwise.
    DocumentsBucket,
    /// Every queue worker's queue (the outbox relay).
    SendToEveryQueue,
}

#[derive(Clone, Copy)]
pub struct FunctionSpec {
    /// As in `functions/<name>/` and both manifests.
    pub name: &'static str,
    /// The CloudFormation resource name stem (`LoginBlockchain` → `LoginBlockchainFunction`).
    pub resource: &'static str,
    pub trigger: Trigger,
    pub needs: &'static [&'static Need],
    pub aws: &'static [AwsAccess],
}

impl FunctionSpec {
    /// The function's part of the OpenAPI document (empty for a queue worker).
    pub fn openapi(&self) -> Option<utoipa::openapi::OpenApi> {
        match self.trigger {
            Trigger::Http { openapi, .. } => Some(openapi()),
            Trigger::Queue { .. } => None,
        }
    }

    /// Its public routes, read from its handlers' `#[utoipa::path]`s.
    pub fn routes(&self) -> Vec<Route> {
        match self.trigger {
            Trigger::Http { routes, .. } => routes(),
            Trigger::Queue { .. } => Vec::new(),
        }
    }

    pub fn schedule(&self) -> Option<Schedule> {
        match self.trigger {
            Trigger::Http { .. } => None,
            Trigger::Queue { schedule, .. } => schedule,
        }
    }

    /// The table entry as data, for `gantry manifests` and the deploy-agreement test.
    pub fn describe(&self) -> FunctionDescription {
        let (trigger, schedule) = match self.trigger {
            Trigger::Http { .. } => ("http", None),
            Trigger::Queue { schedule, .. } => ("queue", schedule),
        };
        FunctionDescription {
            name: self.name,
            resource: self.resource,
            trigger,
            routes: self.routes(),
            schedule,
            needs: self.needs,
            aws: self.aws,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionDescription {
    pub name: &'static str,
    pub resource: &'static str,
    pub trigger: &'static str,
    pub routes: Vec<Route>,
    pub schedule: Option<Schedule>,
    pub needs: &'static [&'static Need],
    pub aws: &'static [AwsAccess],
}
