//! The work-management area: projects, their tasks and work orders, and the
//! content-addressed documents stored on IPFS.
//!
//! It owns its routes and their OpenAPI paths ([`api`]), its router builders (below, one per
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
pub mod projects;
pub mod state;

pub use state::WorkState;

use crate::platform::{Platform, StartupError};
use axum::Router;
use axum::routing::{get, post};

/// `GET, POST /projects`, `GET, PUT, DELETE /projects/{id}`.
pub fn projects(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/projects",
            get(api::list_projects).post(api::create_project),
        )
        .route(
            "/projects/{id}",
            get(api::get_project)
                .put(api::update_project)
                .delete(api::delete_project),
        )
        .with_state(WorkState::new(platform)?))
}

/// `GET, POST /projects/{id}/tasks`.
pub fn project_tasks(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/projects/{id}/tasks",
            get(api::list_tasks).post(api::create_task),
        )
        .with_state(WorkState::without_ipfs(platform)))
}

/// `GET, PUT, DELETE /tasks/{id}`.
pub fn tasks(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/tasks/{id}",
            get(api::get_task)
                .put(api::update_task)
                .delete(api::delete_task),
        )
        .with_state(WorkState::without_ipfs(platform)))
}

/// `GET, POST /projects/{id}/work-orders`.
pub fn project_work_orders(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/projects/{id}/work-orders",
            get(api::list_work_orders).post(api::create_work_order),
        )
        .with_state(WorkState::without_ipfs(platform)))
}

/// `GET, PUT, DELETE /work-orders/{id}`.
pub fn work_orders(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/work-orders/{id}",
            get(api::get_work_order)
                .put(api::update_work_order)
                .delete(api::delete_work_order),
        )
        .with_state(WorkState::without_ipfs(platform)))
}

/// `POST /ipfs`.
pub fn pin_to_ipfs(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/ipfs", post(api::pin))
        .layer(axum::extract::DefaultBodyLimit::max(
            documents::MAX_DOCUMENT_BYTES,
        ))
        .with_state(WorkState::new(platform)?))
}

/// `GET /ipfs/{cid}`.
pub fn ipfs_get(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/ipfs/{cid}", get(api::ipfs_get))
        .with_state(WorkState::new(platform)?))
}
