//! The work area's HTTP handlers and their OpenAPI paths. Thin: extract, call the rule, choose
//! the status.

use super::dto::{ItemInput, ItemQuery, PinQuery, Pinned, ProjectInput, ProjectQuery};
use super::items::{self, Tasks, WorkOrders};
use super::model::{Item, Page, Project, TaskStatus, WorkOrderStatus};
use super::state::WorkState;
use super::{access, documents, projects};
use crate::error::{AppResult, Problem};
use crate::extract::{AuthUser, Authorized, Json, Path, Query, RawBody, StaffOrAdmin};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

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
        (status = 403, description = "Not STAFF or ADMIN", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "client_id does not name a CLIENT", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The IPFS backend answered with another CID", body = Problem, content_type = "application/problem+json"),
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
        (status = 404, description = "No such project, or not the caller's to see", body = Problem, content_type = "application/problem+json"),
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
        (status = 403, description = "A CLIENT (on their own project)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project, or not the caller's to see", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "client_id does not name a CLIENT", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The IPFS backend answered with another CID", body = Problem, content_type = "application/problem+json"),
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
        (status = 403, description = "Not an ADMIN", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project, or not the caller's to see", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Other records (its invoices) still refer to it; the books never lose a row", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_project(
    State(state): State<WorkState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<StatusCode> {
    projects::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The five handlers of one kind of item (tasks, work orders): the same rules (`items`), with
/// an OpenAPI operation per route and kind so that each shows its kind's statuses. Written once
/// here and stamped out per kind, since utoipa needs a literal path per operation.
macro_rules! item_handlers {
    (
        kind: $kind:ty, status: $status:ty,
        list: $list_path:literal, one: $one_path:literal, noun: $noun:literal,
        handlers: ($list:ident, $create:ident, $get:ident, $update:ident, $delete:ident)
    ) => {
        #[utoipa::path(get, path = $list_path, tag = "work", security(("bearer" = [])),
            params(("id" = Uuid, Path, description = "Project id"), ItemQuery<$status>),
            responses(
                (status = 200, description = "A page of the project's items of this kind", body = Page<Item<$status>>),
                (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
            ))]
        pub async fn $list(
            State(state): State<WorkState>,
            caller: AuthUser,
            Path(id): Path<Uuid>,
            Query(query): Query<ItemQuery<$status>>,
        ) -> AppResult<Json<Page<Item<$status>>>> {
            Ok(Json(items::list::<$kind>(&state, &caller, id, query).await?))
        }

        #[utoipa::path(post, path = $list_path, tag = "work", security(("bearer" = [])),
            params(("id" = Uuid, Path, description = "Project id")),
            request_body = ItemInput<$status>,
            responses(
                (status = 201, description = $noun, body = Item<$status>),
                (status = 403, description = NOT_A_WRITER, body = Problem, content_type = "application/problem+json"),
                (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
                (status = 422, description = BAD_ASSIGNEE, body = Problem, content_type = "application/problem+json"),
            ))]
        pub async fn $create(
            State(state): State<WorkState>,
            caller: AuthUser,
            Path(id): Path<Uuid>,
            Json(body): Json<ItemInput<$status>>,
        ) -> AppResult<(StatusCode, Json<Item<$status>>)> {
            let item = items::create::<$kind>(&state, &caller, id, body).await?;
            Ok((StatusCode::CREATED, Json(item)))
        }

        #[utoipa::path(get, path = $one_path, tag = "work", security(("bearer" = [])),
            params(("id" = Uuid, Path, description = "Item id")),
            responses(
                (status = 200, description = $noun, body = Item<$status>),
                (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
            ))]
        pub async fn $get(
            State(state): State<WorkState>,
            caller: AuthUser,
            Path(id): Path<Uuid>,
        ) -> AppResult<Json<Item<$status>>> {
            Ok(Json(items::get::<$kind>(&state, &caller, id).await?))
        }

        #[utoipa::path(put, path = $one_path, tag = "work", security(("bearer" = [])),
            params(("id" = Uuid, Path, description = "Item id")),
            request_body = ItemInput<$status>,
            responses(
                (status = 200, description = $noun, body = Item<$status>),
                (status = 403, description = NOT_A_WRITER, body = Problem, content_type = "application/problem+json"),
                (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
                (status = 422, description = BAD_ASSIGNEE, body = Problem, content_type = "application/problem+json"),
            ))]
        pub async fn $update(
            State(state): State<WorkState>,
            caller: AuthUser,
            Path(id): Path<Uuid>,
            Json(body): Json<ItemInput<$status>>,
        ) -> AppResult<Json<Item<$status>>> {
            Ok(Json(items::update::<$kind>(&state, &caller, id, body).await?))
        }

        #[utoipa::path(delete, path = $one_path, tag = "work", security(("bearer" = [])),
            params(("id" = Uuid, Path, description = "Item id")),
            responses(
                (status = 204, description = "Deleted"),
                (status = 403, description = "Not an ADMIN (as for deleting its project)", body = Problem, content_type = "application/problem+json"),
                (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
            ))]
        pub async fn $delete(
            State(state): State<WorkState>,
            caller: AuthUser,
            Path(id): Path<Uuid>,
        ) -> AppResult<StatusCode> {
            items::delete::<$kind>(&state, &caller, id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    };
}

const NOT_VISIBLE: &str = "No such project or item, or not the caller's to see";
const NOT_A_WRITER: &str = "A CLIENT (on their own project)";
const BAD_ASSIGNEE: &str = "assignee_id is not STAFF, ADMIN or the project's client";

item_handlers! {
    kind: Tasks, status: TaskStatus,
    list: "/projects/{id}/tasks", one: "/tasks/{id}", noun: "The task",
    handlers: (list_tasks, create_task, get_task, update_task, delete_task)
}

item_handlers! {
    kind: WorkOrders, status: WorkOrderStatus,
    list: "/projects/{id}/work-orders", one: "/work-orders/{id}", noun: "The work order",
    handlers: (list_work_orders, create_work_order, get_work_order, update_work_order, delete_work_order)
}

#[utoipa::path(post, path = "/ipfs", tag = "ipfs", security(("bearer" = [])),
    params(PinQuery),
    request_body(content = String, content_type = "application/octet-stream",
        description = "The document's bytes, in any content type (recorded and served back)"),
    responses(
        (status = 201, description = "Stored and pinned", body = Pinned),
        (status = 403, description = "Attaching to a project needs STAFF or ADMIN", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project, or not the caller's to see", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 5 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The IPFS backend answered with another CID; nothing is recorded", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn pin(
    State(state): State<WorkState>,
    caller: AuthUser,
    Query(query): Query<PinQuery>,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> AppResult<(StatusCode, Json<Pinned>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 255)
        .unwrap_or("application/octet-stream");
    let pinned = documents::pin(&state, &caller, query.project_id, content_type, &bytes).await?;
    Ok((StatusCode::CREATED, Json(pinned)))
}

#[utoipa::path(get, path = "/ipfs/{cid}", tag = "ipfs", security(("bearer" = [])),
    params(("cid" = String, Path, description = "A CID this API stored (CIDv1, base32)", pattern = r"^(b[a-z2-7]{58}|Qm[1-9A-HJ-NP-Za-km-z]{44})$")),
    responses(
        (status = 200, description = "The bytes, verified against the CID, in the content type they were uploaded with",
            content((String = "*/*"))),
        (status = 404, description = "Not a CID this API stored, or not the caller's to see", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The backend's bytes do not match the CID", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ipfs_get(
    State(state): State<WorkState>,
    caller: AuthUser,
    Path(cid): Path<String>,
) -> AppResult<Response> {
    let (content_type, bytes) = documents::get(&state, &caller, &cid).await?;
    let content_type = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            // Uploaded bytes are never rendered as a page of this origin.
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The work area's tags in the OpenAPI document; its paths come from its functions' endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "work", description = "Projects, their tasks and work orders"),
        (name = "ipfs", description = "Documents on IPFS, content-addressed"),
    )
)]
pub struct WorkApi;

/// What the derive cannot say: document bodies are bytes, and how the work area's responses
/// feed its other operations (OpenAPI links).
pub fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    use crate::openapi::{add_link, operation_mut};
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
    if let Some(RefOr::T(body)) =
        operation_mut(doc, "post", "/ipfs").and_then(|op| op.request_body.as_mut())
    {
        for content in body.content.values_mut() {
            if let RefOr::T(content) = content {
                content.schema = Some(RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                        .build(),
                )));
            }
        }
    }
    // The bytes come back in the content type they were stored with: any schema.
    if let Some(RefOr::T(ok)) = operation_mut(doc, "get", "/ipfs/{cid}")
        .and_then(|op| op.responses.responses.get_mut("200"))
    {
        for content in ok.content.values_mut() {
            if let RefOr::T(content) = content {
                content.schema = Some(RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .description(Some("The stored bytes"))
                        .build(),
                )));
            }
        }
    }
    use utoipa::openapi::link::LinkBuilder;
    let project = |operation: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .parameter("path.id", "$response.body#/id")
            .description("The new project's id")
            .build()
    };
    let under_project = [
        "get_project",
        "update_project",
        "delete_project",
        "list_tasks",
        "create_task",
        "list_work_orders",
        "create_work_order",
    ];
    for operation in under_project {
        add_link(
            doc,
            "post",
            "/projects",
            "201",
            operation,
            project(operation),
        );
    }
    // A new task or work order feeds its own routes.
    let kinds = [
        (
            "/projects/{id}/tasks",
            ["get_task", "update_task", "delete_task"],
        ),
        (
            "/projects/{id}/work-orders",
            ["get_work_order", "update_work_order", "delete_work_order"],
        ),
    ];
    for (list, operations) in kinds {
        for operation in operations {
            let link = LinkBuilder::new()
                .operation_id(operation)
                .parameter("path.id", "$response.body#/id")
                .description("The new item's id")
                .build();
            add_link(doc, "post", list, "201", operation, link);
        }
    }
    let metadata = LinkBuilder::new()
        .operation_id("ipfs_get")
        .parameter("path.cid", "$response.body#/ipfs_metadata_cid")
        .description("The project's metadata document")
        .build();
    add_link(doc, "post", "/projects", "201", "metadata", metadata);
    let document = LinkBuilder::new()
        .operation_id("ipfs_get")
        .parameter("path.cid", "$response.body#/cid")
        .description("The stored bytes")
        .build();
    add_link(doc, "post", "/ipfs", "201", "read", document);
}
