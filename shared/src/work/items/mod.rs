//! Tasks and work orders: the items under a project. One set of rules serves both kinds; a
//! [`Kind`] says which table rows, statuses and audit actions are meant. They are stored in one
//! table (`work_items`, told apart by `kind`), so every query here is written once.
//!
//! Access is "like its project": an item is visible exactly when its project is (a CLIENT: the
//! projects whose `client_id` is theirs); STAFF and ADMIN create and replace items; only an
//! ADMIN deletes one, as only an ADMIN deletes a project.

pub mod api;

use super::access::{self, DELETERS, WRITERS};
use super::audit::{self, WorkAction};
use super::dto::{ItemInput, ItemQuery};
use super::model::{Item, Page};
use super::projects::heading;
use super::state::WorkState;
use crate::domain::{Role, page_limit};
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use crate::work::error::WorkError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "work_item_kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemKind {
    Task,
    WorkOrder,
}

/// One kind of item.
pub trait Kind: Send + Sync + 'static {
    const KIND: ItemKind;
    /// Its statuses: an enum that serialises as the text stored in `work_items.status`.
    type Status: Copy
        + Send
        + Sync
        + Unpin
        + Serialize
        + DeserializeOwned
        + utoipa::ToSchema
        + 'static;
    /// The status of a new item when the writer gives none.
    const INITIAL: Self::Status;
    const CREATED: WorkAction;
    const UPDATED: WorkAction;
    const DELETED: WorkAction;
}

pub struct Tasks;

impl Kind for Tasks {
    const KIND: ItemKind = ItemKind::Task;
    type Status = super::model::TaskStatus;
    const INITIAL: Self::Status = super::model::TaskStatus::Todo;
    const CREATED: WorkAction = WorkAction::TaskCreated;
    const UPDATED: WorkAction = WorkAction::TaskUpdated;
    const DELETED: WorkAction = WorkAction::TaskDeleted;
}

pub struct WorkOrders;

impl Kind for WorkOrders {
    const KIND: ItemKind = ItemKind::WorkOrder;
    type Status = super::model::WorkOrderStatus;
    const INITIAL: Self::Status = super::model::WorkOrderStatus::Open;
    const CREATED: WorkAction = WorkAction::WorkOrderCreated;
    const UPDATED: WorkAction = WorkAction::WorkOrderUpdated;
    const DELETED: WorkAction = WorkAction::WorkOrderDeleted;
}

/// The stored text of a status (its serde name, which the table's CHECK lists).
fn status_text<S: Serialize>(status: S) -> AppResult<String> {
    match serde_json::to_value(status).map_err(AppError::internal)? {
        serde_json::Value::String(text) => Ok(text),
        other => Err(AppError::internal(anyhow::anyhow!("a status is {other}"))),
    }
}

/// A `work_items` row as Postgres gives it.
struct Row {
    id: Uuid,
    project_id: Uuid,
    title: String,
    description: String,
    status: String,
    due_date: Option<Date>,
    assignee_id: Option<Uuid>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl Row {
    fn item<K: Kind>(self) -> AppResult<Item<K::Status>> {
        let status = serde_json::from_value(serde_json::Value::String(self.status))
            .map_err(AppError::internal)?;
        Ok(Item {
            id: self.id,
            project_id: self.project_id,
            title: self.title,
            description: self.description,
            status,
            due_date: self.due_date,
            assignee_id: self.assignee_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A validated [`ItemInput`], the status as stored.
struct Valid {
    title: String,
    description: String,
    status: String,
    due_date: Option<Date>,
    assignee_id: Option<Uuid>,
}

fn validate<K: Kind>(input: ItemInput<K::Status>) -> AppResult<Valid> {
    let (title, description) = heading("title", &input.title, &input.description)?;
    Ok(Valid {
        title,
        description,
        status: status_text(input.status.unwrap_or(K::INITIAL))?,
        due_date: input.due_date,
        assignee_id: input.assignee_id,
    })
}

/// An assignee must be able to see the project: STAFF, ADMIN, or the project's own client.
async fn ensure_assignee(
    state: &WorkState,
    project_id: Uuid,
    assignee: Option<Uuid>,
) -> AppResult<()> {
    let Some(id) = assignee else {
        return Ok(());
    };
    let role = crate::identity::facade::role_of(state.db()?, id).await?;
    // `None`: the project is gone; `Some(None)`: it has no client.
    let client = sqlx::query_scalar!("SELECT client_id FROM projects WHERE id = $1", project_id)
        .fetch_optional(state.db()?)
        .await?;
    let sees = match (role, client) {
        (Some(Role::Staff | Role::Admin), Some(_)) => true,
        (Some(Role::Client), Some(client)) => client == Some(id),
        _ => false,
    };
    if sees {
        return Ok(());
    }
    Err(WorkError::NotAnAssignee.into())
}

/// The item if the caller may see its project; 404 otherwise.
async fn visible_item<K: Kind>(state: &WorkState, caller: &AuthUser, id: Uuid) -> AppResult<Row> {
    sqlx::query_as!(
        Row,
        r#"SELECT i.id, i.project_id, i.title, i.description, i.status, i.due_date,
                  i.assignee_id, i.created_at, i.updated_at
           FROM work_items i JOIN projects p ON p.id = i.project_id
           WHERE i.id = $1 AND i.kind = $2 AND ($3::uuid IS NULL OR p.client_id = $3)"#,
        id,
        K::KIND as ItemKind,
        access::client_scope(caller),
    )
    .fetch_optional(state.db()?)
    .await?
    .ok_or(WorkError::NotVisible.into())
}

#[tracing::instrument(name = "work.get_item", skip_all)]
pub async fn get<K: Kind>(
    state: &WorkState,
    caller: &AuthUser,
    id: Uuid,
) -> AppResult<Item<K::Status>> {
    visible_item::<K>(state, caller, id).await?.item::<K>()
}

#[tracing::instrument(name = "work.list_items", skip_all)]
pub async fn list<K: Kind>(
    state: &WorkState,
    caller: &AuthUser,
    project_id: Uuid,
    query: ItemQuery<K::Status>,
) -> AppResult<Page<Item<K::Status>>> {
    let limit = page_limit(query.limit).map_err(|e| AppError::Validation(vec![e]))?;
    access::visible_project(state, caller, project_id).await?;
    let status = query.status.map(status_text).transpose()?;
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, project_id, title, description, status, due_date, assignee_id,
                  created_at, updated_at
           FROM work_items
           WHERE project_id = $1 AND kind = $2
             AND ($3::text IS NULL OR status = $3)
             AND ($4::uuid IS NULL OR id > $4)
           ORDER BY id LIMIT $5"#,
        project_id,
        K::KIND as ItemKind,
        status,
        query.cursor,
        i64::from(limit) + 1,
    )
    .fetch_all(state.db()?)
    .await?;
    let items = rows
        .into_iter()
        .map(Row::item::<K>)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Page::of(items, limit, |item| item.id))
}

#[tracing::instrument(name = "work.create_item", skip_all)]
pub async fn create<K: Kind>(
    state: &WorkState,
    caller: &AuthUser,
    project_id: Uuid,
    input: ItemInput<K::Status>,
) -> AppResult<Item<K::Status>> {
    access::visible_project(state, caller, project_id).await?;
    access::ensure_may(caller, WRITERS)?;
    let valid = validate::<K>(input)?;
    ensure_assignee(state, project_id, valid.assignee_id).await?;
    let mut tx = state.db()?.begin().await?;
    let row = sqlx::query_as!(
        Row,
        r#"INSERT INTO work_items
               (id, kind, project_id, title, description, status, due_date, assignee_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, project_id, title, description, status, due_date, assignee_id,
                     created_at, updated_at"#,
        Uuid::now_v7(),
        K::KIND as ItemKind,
        project_id,
        valid.title,
        valid.description,
        valid.status,
        valid.due_date,
        valid.assignee_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        K::CREATED,
        caller,
        row.id,
        json!({"project_id": project_id}),
    )
    .await?;
    tx.commit().await?;
    row.item::<K>()
}

#[tracing::instrument(name = "work.update_item", skip_all)]
pub async fn update<K: Kind>(
    state: &WorkState,
    caller: &AuthUser,
    id: Uuid,
    input: ItemInput<K::Status>,
) -> AppResult<Item<K::Status>> {
    let current = visible_item::<K>(state, caller, id).await?;
    access::ensure_may(caller, WRITERS)?;
    let valid = validate::<K>(input)?;
    ensure_assignee(state, current.project_id, valid.assignee_id).await?;
    let mut tx = state.db()?.begin().await?;
    let row = sqlx::query_as!(
        Row,
        r#"UPDATE work_items SET title = $3, description = $4, status = $5, due_date = $6,
                  assignee_id = $7, updated_at = now()
           WHERE id = $1 AND kind = $2
           RETURNING id, project_id, title, description, status, due_date, assignee_id,
                     created_at, updated_at"#,
        id,
        K::KIND as ItemKind,
        valid.title,
        valid.description,
        valid.status,
        valid.due_date,
        valid.assignee_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(WorkError::NotVisible)?;
    audit::record(
        &mut tx,
        K::UPDATED,
        caller,
        id,
        json!({"project_id": row.project_id}),
    )
    .await?;
    tx.commit().await?;
    row.item::<K>()
}

#[tracing::instrument(name = "work.delete_item", skip_all)]
pub async fn delete<K: Kind>(state: &WorkState, caller: &AuthUser, id: Uuid) -> AppResult<()> {
    let current = visible_item::<K>(state, caller, id).await?;
    access::ensure_may(caller, DELETERS)?;
    let mut tx = state.db()?.begin().await?;
    let deleted = sqlx::query!(
        "DELETE FROM work_items WHERE id = $1 AND kind = $2",
        id,
        K::KIND as ItemKind,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(WorkError::NotVisible.into());
    }
    audit::record(
        &mut tx,
        K::DELETED,
        caller,
        id,
        json!({"project_id": current.project_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
