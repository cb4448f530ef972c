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

pub use crate::need::{
    AwsAccess, FaasValue, Need, SamValue, Var, needs, optional, required, secret,
};
use utoipa::openapi::path::HttpMethod;
use utoipa_axum::PathItemExt;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// Builds a queue worker's handler from the platform.
pub type BuildHandler = fn(&Platform) -> Result<Arc<dyn JobHandler>, StartupError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn http(self) -> axum::http::Method {
        match self {
            Self::Get => axum::http::Method::GET,
            Self::Post => axum::http::Method::POST,
            Self::Put => axum::http::Method::PUT,
            Self::Patch => axum::http::Method::PATCH,
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
            HttpMethod::Patch => Some(Self::Patch),
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

/// An [`Endpoint`] for a handler annotated with `#[utoipa::path]`, named alone where it is
/// defined (`endpoint!(login)`) or with its module (`endpoint!(wallet_api::login)`).
#[macro_export]
macro_rules! endpoint {
    ($handler:ident) => {
        ::pastey::paste! {
            $crate::function::Endpoint {
                path: <[<__path_ $handler>] as ::utoipa::Path>::path,
                methods: <[<__path_ $handler>] as ::utoipa::Path>::methods,
                route: |filter| ::axum::routing::on(filter, $handler),
                openapi: || ::utoipa_axum::routes!($handler),
            }
        }
    };
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

/// An HTTP function's handlers and the state they share, declared beside its handlers:
/// `Trigger::Http(&Http::new(State::new, &[endpoint!(handler)]))`. Each handler's method and
/// path are written once, in its `#[utoipa::path]`: the router, the OpenAPI document, CORS, the
/// SAM events and the 503 list are all read from there.
pub struct Http<S: 'static> {
    /// Their shared state, from the platform (a missing setting is a [`StartupError`]).
    state: fn(&Platform) -> Result<S, StartupError>,
    /// The handlers, each made by [`endpoint!`](crate::endpoint).
    endpoints: &'static [Endpoint<S>],
    /// Layers of the function's own (a body limit of its own, say).
    layer: fn(Router<S>) -> Router<S>,
}

impl<S> Http<S> {
    pub const fn new(
        state: fn(&Platform) -> Result<S, StartupError>,
        endpoints: &'static [Endpoint<S>],
    ) -> Self {
        Self {
            state,
            endpoints,
            layer: |router| router,
        }
    }

    /// The same function with layers of its own around its routes.
    pub const fn layer(self, layer: fn(Router<S>) -> Router<S>) -> Self {
        Self { layer, ..self }
    }
}

/// What the runtime, the gateway and the OpenAPI document ask of an HTTP function, whatever its
/// state's type.
pub trait HttpFunction: Sync {
    /// Its part of the OpenAPI document: its paths and their schemas.
    fn openapi(&self) -> utoipa::openapi::OpenApi;
    /// Its public routes.
    fn routes(&self) -> Vec<Route>;
    /// Its router, with its state built from the platform.
    fn build(&self, platform: &Platform) -> Result<Router, StartupError>;
}

impl<S: Clone + Send + Sync + 'static> HttpFunction for Http<S> {
    fn openapi(&self) -> utoipa::openapi::OpenApi {
        let router = self
            .endpoints
            .iter()
            .fold(OpenApiRouter::new(), |router, endpoint| {
                router.routes((endpoint.openapi)())
            });
        router.into_openapi()
    }

    fn routes(&self) -> Vec<Route> {
        let mut routes = Vec::new();
        for endpoint in self.endpoints {
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

    fn build(&self, platform: &Platform) -> Result<Router, StartupError> {
        let mut router = Router::new();
        for endpoint in self.endpoints {
            let path = (endpoint.path)();
            for method in (endpoint.methods)() {
                router = router.route(&path, (endpoint.route)(method.to_method_filter()));
            }
        }
        Ok((self.layer)(router).with_state((self.state)(platform)?))
    }
}

/// When a queue is fed on a schedule: every `minutes`, the message `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub minutes: u32,
    pub body: &'static str,
    /// A variable of whole seconds that replaces `minutes` in the local gateway (so a local run
    /// can make a daily job run every few seconds); deployed schedules keep `minutes`.
    pub local_every: Option<&'static str>,
    /// How long one run may take when deployed, in seconds, where that is longer than the
    /// stack's 10 s (under Lambda, the function's `Timeout`; its queue's visibility timeout is
    /// six times as long).
    pub timeout_secs: Option<u32>,
}

#[derive(Clone, Copy)]
pub enum Trigger {
    /// API Gateway routes under Lambda; plain HTTP on `$PORT` otherwise.
    Http(&'static dyn HttpFunction),
    /// An SQS queue under Lambda; `POST /` per message over HTTP (OpenFaaS async); the Postgres
    /// queue in the local gateway. The queue has the function's name.
    Queue {
        build: BuildHandler,
        schedule: Option<Schedule>,
    },
}

/// A deployable function, declared by the module that holds its handlers (or its worker).
#[derive(Clone, Copy)]
pub struct FunctionSpec {
    /// As in `functions/<name>/` and both manifests.
    pub name: &'static str,
    pub trigger: Trigger,
    pub needs: &'static [&'static Need],
}

impl FunctionSpec {
    /// The function's part of the OpenAPI document (empty for a queue worker).
    pub fn openapi(&self) -> Option<utoipa::openapi::OpenApi> {
        match self.trigger {
            Trigger::Http(function) => Some(function.openapi()),
            Trigger::Queue { .. } => None,
        }
    }

    /// Its public routes, read from its handlers' `#[utoipa::path]`s.
    pub fn routes(&self) -> Vec<Route> {
        match self.trigger {
            Trigger::Http(function) => function.routes(),
            Trigger::Queue { .. } => Vec::new(),
        }
    }

    pub fn schedule(&self) -> Option<Schedule> {
        match self.trigger {
            Trigger::Http(_) => None,
            Trigger::Queue { schedule, .. } => schedule,
        }
    }

    /// The table entry as data, for `gantry manifests` and the deploy-agreement test.
    pub fn describe(&self) -> FunctionDescription {
        let (trigger, schedule) = match self.trigger {
            Trigger::Http(_) => ("http", None),
            Trigger::Queue { schedule, .. } => ("queue", schedule),
        };
        FunctionDescription {
            name: self.name,
            trigger,
            routes: self.routes(),
            schedule,
            needs: self.needs,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionDescription {
    pub name: &'static str,
    pub trigger: &'static str,
    pub routes: Vec<Route>,
    pub schedule: Option<Schedule>,
    pub needs: &'static [&'static Need],
}
