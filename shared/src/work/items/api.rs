//! The task and work-order functions (`project-tasks`, `tasks`, `project-work-orders`,
//! `work-orders`): their handlers and OpenAPI paths. Thin: extract, call the rule ([`super`]),
//! choose the status.

use super::{self as items, Tasks, WorkOrders};
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AuthUser, Json, Path, Query};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::work::dto::{ItemInput, ItemQuery};
use crate::work::model::{Item, Page, TaskStatus, WorkOrderStatus};
use crate::work::state::WorkState;
use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

/// The state of the item functions: no IPFS backend.
fn state(platform: &crate::Platform) -> Result<WorkState, crate::platform::StartupError> {
    Ok(WorkState::without_ipfs(platform))
}

/// `project-tasks`: a project's tasks.
pub static PROJECT_TASKS: FunctionSpec = FunctionSpec {
    name: "project-tasks",
    trigger: Trigger::Http(&Http::new(
        state,
        &[endpoint!(list_tasks), endpoint!(create_task)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// `tasks`: one task.
pub static TASKS: FunctionSpec = FunctionSpec {
    name: "tasks",
    trigger: Trigger::Http(&Http::new(
        state,
        &[
            endpoint!(get_task),
            endpoint!(update_task),
            endpoint!(delete_task),
        ],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// `project-work-orders`: a project's work orders.
pub static PROJECT_WORK_ORDERS: FunctionSpec = FunctionSpec {
    name: "project-work-orders",
    trigger: Trigger::Http(&Http::new(
        state,
        &[endpoint!(list_work_orders), endpoint!(create_work_order)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// `work-orders`: one work order.
pub static WORK_ORDERS: FunctionSpec = FunctionSpec {
    name: "work-orders",
    trigger: Trigger::Http(&Http::new(
        state,
        &[
            endpoint!(get_work_order),
            endpoint!(update_work_order),
            endpoint!(delete_work_order),
        ],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

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
                (status = 404, description = NOT_VISIBLE),
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
                (status = 403, description = NOT_A_WRITER),
                (status = 404, description = NOT_VISIBLE),
                (status = 422, description = BAD_ASSIGNEE),
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
                (status = 404, description = NOT_VISIBLE),
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
                (status = 403, description = NOT_A_WRITER),
                (status = 404, description = NOT_VISIBLE),
                (status = 422, description = BAD_ASSIGNEE),
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
                (status = 403, description = "Not an ADMIN (as for deleting its project)"),
                (status = 404, description = NOT_VISIBLE),
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
