//! The `projects` function: its handlers and their OpenAPI paths. Thin: extract, call the rule
//! ([`super`]), choose the status.

use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AuthUser, Authorized, Json, Path, Query, StaffOrAdmin};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::work::dto::{ProjectInput, ProjectQuery};
use crate::work::model::{Page, Project};
use crate::work::state::WorkState;
use crate::work::{access, projects};
use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

/// `projects`: projects (their documents on IPFS).
pub static PROJECTS: FunctionSpec = FunctionSpec {
    name: "projects",
    trigger: Trigger::Http(&Http::new(
        WorkState::new,
        &[
            endpoint!(list_projects),
            endpoint!(create_project),
            endpoint!(get_project),
            endpoint!(update_project),
            endpoint!(delete_project),
        ],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &crate::ipfs::config::NEED],
};

#[utoipa::path(get, path = "/projects", tag = "work", security(("bearer" = [])),
    params(ProjectQuery),
    responses(
        (status = 200, description = "A page of the projects the caller can see (a CLIENT: their own)", body = Page<Project>),
    ))]
pub async fn list_projects(
    State(state): State<WorkState>,
    caller: AuthUser,
    Query(query): Query<ProjectQuery>,
) -> AppResult<Json<Page<Project>>> {
    Ok(Json(projects::list(&state, &caller, query).await?))
}

#[utoipa::path(post, path = "/projects", tag = "work", security(("bearer" = [])),
    request_body = ProjectInput,
    responses(
        (status = 201, description = "The project, with its metadata document's CID", body = Project),
        (status = 403, description = "Not STAFF or ADMIN"),
        (status = 422, description = "client_id does not name a CLIENT"),
        (status = 502, description = "The IPFS backend answered with another CID"),
    ))]
pub async fn create_project(
    State(state): State<WorkState>,
    Authorized(caller, _): Authorized<StaffOrAdmin>,
    Json(body): Json<ProjectInput>,
) -> AppResult<(StatusCode, Json<Project>)> {
    Ok((
        StatusCode::CREATED,
        Json(projects::create(&state, &caller, body).await?),
    ))
}

#[utoipa::path(get, path = "/projects/{id}", tag = "work", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 404, description = "No such project, or not the caller's to see"),
    ))]
pub async fn get_project(
    State(state): State<WorkState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Project>> {
    Ok(Json(access::visible_project(&state, &caller, id).await?))
}

#[utoipa::path(put, path = "/projects/{id}", tag = "work", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id")),
    request_body = ProjectInput,
    responses(
        (status = 200, description = "The project, replaced, with its new metadata CID", body = Project),
        (status = 403, description = "A CLIENT (on their own project)"),
        (status = 404, description = "No such project, or not the caller's to see"),
        (status = 422, description = "client_id does not name a CLIENT"),
        (status = 502, description = "The IPFS backend answered with another CID"),
    ))]
pub async fn update_project(
    State(state): State<WorkState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<ProjectInput>,
) -> AppResult<Json<Project>> {
    Ok(Json(projects::update(&state, &caller, id, body).await?))
}

#[utoipa::path(delete, path = "/projects/{id}", tag = "work", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 204, description = "Deleted, with its tasks, work orders and document records"),
        (status = 403, description = "Not an ADMIN"),
        (status = 404, description = "No such project, or not the caller's to see"),
        (status = 409, description = "Other records (its invoices) still refer to it; the books never lose a row"),
    ))]
pub async fn delete_project(
    State(state): State<WorkState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<StatusCode> {
    projects::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
