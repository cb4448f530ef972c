//! The work-management area: projects, their tasks and work orders, and the
//! content-addressed documents stored on IPFS.
//!
//! It owns its routes and their OpenAPI paths ([`api`]), its HTTP functions (below, one `HttpApi` per
//! deployable function), its access rules ([`access`]), its audit actions ([`audit`]) and its
//! configuration (the IPFS backend). The core never imports it; the areas above it (payments)
//! use only [`facade`].

pub mod access;
pub mod api;
pub mod audit;
pub mod documents;
pub mod dto;
pub mod facade;
pub mod items;
pub mod model;
pub mod pins;
pub mod projects;
pub mod state;

pub use state::WorkState;

use crate::endpoint;
use crate::function::{Endpoint, HttpApi};
use crate::platform::{Platform, StartupError};
use axum::Router;

/// `projects`: projects (their documents on IPFS).
pub struct Projects;

impl HttpApi for Projects {
    type State = WorkState;
    const ENDPOINTS: &'static [Endpoint<WorkState>] = &[
        endpoint!(api::list_projects),
        endpoint!(api::create_project),
        endpoint!(api::get_project),
        endpoint!(api::update_project),
        endpoint!(api::delete_project),
    ];
    fn state(platform: &Platform) -> Result<WorkState, StartupError> {
        WorkState::new(platform)
    }
}

/// `project-tasks`: a project's tasks.
pub struct ProjectTasks;

impl HttpApi for ProjectTasks {
    type State = WorkState;
    const ENDPOINTS: &'static [Endpoint<WorkState>] =
        &[endpoint!(api::list_tasks), endpoint!(api::create_task)];
    fn state(platform: &Platform) -> Result<WorkState, StartupError> {
        Ok(WorkState::without_ipfs(platform))
    }
}

/// `tasks`: one task.
pub struct Tasks;

impl HttpApi for Tasks {
    type State = WorkState;
    const ENDPOINTS: &'static [Endpoint<WorkState>] = &[
        endpoint!(api::get_task),
        endpoint!(api::update_task),
        endpoint!(api::delete_task),
    ];
    fn state(platform: &Platform) -> Result<WorkState, StartupError> {
        Ok(WorkState::without_ipfs(platform))
    }
}

/// `project-work-orders`: a project's work orders.
pub struct ProjectWorkOrders;

impl HttpApi for ProjectWorkOrders {
    type State = WorkState;
    const ENDPOINTS: &'static [Endpoint<WorkState>] = &[
        endpoint!(api::list_work_orders),
        endpoint!(api::create_work_order),
    ];
    fn state(platform: &Platform) -> Result<WorkState, StartupError> {
        Ok(WorkState::without_ipfs(platform))
    }
}

/// `work-orders`: one work order.
pub struct WorkOrders;

impl HttpApi for WorkOrders {
    type State = WorkState;
    const ENDPOINTS: &'static [Endpoint<WorkState>] = &[
        endpoint!(api::get_work_order),
        endpoint!(api::update_work_order),
        endpoint!(api::delete_work_order),
    ];
    fn state(platform: &Platform) -> Result<WorkState, StartupError> {
        Ok(WorkState::without_ipfs(platform))
    }
}

/// `pin-to-ipfs`: store a document (bodies up to the document limit, not the edge's).
pub struct PinToIpfs;

impl HttpApi for PinToIpfs {
    type State = WorkState;
    const ENDPOINTS: &'static [Endpoint<WorkState>] = &[endpoint!(api::pin)];
    fn layer(router: Router<WorkState>) -> Router<WorkState> {
        router.layer(axum::extract::DefaultBodyLimit::max(
            documents::MAX_DOCUMENT_BYTES,
        ))
    }
    fn state(platform: &Platform) -> Result<WorkState, StartupError> {
        WorkState::new(platform)
    }
}

/// `ipfs-get`: a document by CID.
pub struct IpfsGet;

impl HttpApi for IpfsGet {
    type State = WorkState;
    const ENDPOINTS: &'static [Endpoint<WorkState>] = &[endpoint!(api::ipfs_get)];
    fn state(platform: &Platform) -> Result<WorkState, StartupError> {
        WorkState::new(platform)
    }
}
