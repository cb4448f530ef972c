//! What a deployable function is: a name, a trigger, and what it needs from its deployment.
//! The table of every function (`crate::app::FUNCTIONS`) is made of these; the runtime serves
//! one, the gateway mounts them all, and `gantry manifests` writes template.yaml and stack.yml
//! from them, so the lists cannot drift apart.

use crate::platform::{Platform, StartupError};
use crate::queue::JobHandler;
use axum::Router;
use serde::Serialize;
use std::sync::Arc;

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

/// One public route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
}

pub const fn get(path: &'static str) -> Route {
    Route {
        method: Method::Get,
        path,
    }
}

pub const fn post(path: &'static str) -> Route {
    Route {
        method: Method::Post,
        path,
    }
}

pub const fn delete(path: &'static str) -> Route {
    Route {
        method: Method::Delete,
        path,
    }
}

pub const fn put(path: &'static str) -> Route {
    Route {
        method: Method::Put,
        path,
    }
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
    Http {
        routes: &'static [Route],
        build: BuildRouter,
    },
    /// An SQS queue under Lambda; `POST /` per message over HTTP (OpenFaaS async); the Postgres
    /// queue in the local gateway. The queue has the function's name.
    Queue {
        build: BuildHandler,
        schedule: Option<Schedule>,
    },
}

/// A secret or setting group a function's deployment must provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// `DATABASE_URL`.
    Database,
    /// `JWT_PRIVATE_KEY`: the function issues tokens.
    PrivateKey,
    /// `JWT_PUBLIC_KEYS`: the function verifies tokens issued elsewhere.
    PublicKeys,
    /// `SIWE_DOMAINS`, `SIWE_CHAIN_IDS` and `SIWE_NONCE_SECRET`: it issues or checks SIWE nonces.
    Siwe,
    /// `CHAIN_RPC_URLS`: it calls a chain.
    ChainRpc,
    /// `IPFS_BACKEND` and its settings: it stores or reads documents.
    Ipfs,
}

/// An AWS permission a function's role needs beyond logging (none yet: SAM grants a queue
/// worker its own queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AwsAccess {
    SendToQueue { queue: &'static str },
}

#[derive(Clone, Copy)]
pub struct FunctionSpec {
    /// As in `functions/<name>/` and both manifests.
    pub name: &'static str,
    /// The CloudFormation resource name stem (`LoginBlockchain` → `LoginBlockchainFunction`).
    pub resource: &'static str,
    pub trigger: Trigger,
    pub needs: &'static [Need],
    pub aws: &'static [AwsAccess],
}

impl FunctionSpec {
    pub fn routes(&self) -> &'static [Route] {
        match self.trigger {
            Trigger::Http { routes, .. } => routes,
            Trigger::Queue { .. } => &[],
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
    pub routes: &'static [Route],
    pub schedule: Option<Schedule>,
    pub needs: &'static [Need],
    pub aws: &'static [AwsAccess],
}
