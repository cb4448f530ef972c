//! Project rules: list, read, create, replace, delete. Every change stores the project's
//! metadata document on IPFS first (content-addressed: a failed transaction leaves at most an
//! unreferenced block), then writes the row, its `ipfs_objects` record and its audit row in one
//! transaction.

pub mod api;

use super::access::{self, DELETERS, WRITERS};
use super::audit::{self, WorkAction};
use super::documents::record_object;
use super::dto::{DESCRIPTION_MAX, NAME_MAX, ProjectInput, ProjectQuery};
use super::model::{Page, Project, ProjectStatus};
use super::state::WorkState;
use crate::domain::{Role, page_limit, parse_line, parse_text};
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::AuthUser;
use crate::ipfs::store::Stored;
use crate::work::error::WorkError;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// A validated [`ProjectInput`].
struct Valid {
    name: String,
    description: String,
    status: ProjectStatus,
    client_id: Option<Uuid>,
}

fn validate(input: ProjectInput) -> AppResult<Valid> {
    let (name, description) = heading("name", &input.name, &input.description)?;
    Ok(Valid {
        name,
        description,
        status: input.status.unwrap_or(ProjectStatus::Planning),
        client_id: input.client_id,
    })
}

/// A record's one-line heading (`name`, `title`) and its free-text description, validated
/// together so that one answer lists every bad field.
pub(crate) fn heading(field: &str, line: &str, description: &str) -> AppResult<(String, String)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let line = parse_line(field, line, NAME_MAX)
        .map_err(|e| errors.push(e))
        .ok();
    let description = parse_text("description", description, DESCRIPTION_MAX)
        .map_err(|e| errors.push(e))
        .ok();
    match (line, description) {
        (Some(line), Some(description)) if errors.is_empty() => Ok((line, description)),
        _ => Err(AppError::Validation(errors)),
    }
}

/// The metadata document: canonical JSON (keys in lexical order, no whitespace), so identical
/// content always has the same CID.
#[derive(Serialize)]
struct Metadata<'a> {
    client_id: Option<Uuid>,
    description: &'a str,
    id: Uuid,
    name: &'a str,
    status: ProjectStatus,
}

/// A `client_id` must name a CLIENT: a well-formed id that names anyone else is a 422.
async fn ensure_client(state: &WorkState, client_id: Option<Uuid>) -> AppResult<()> {
    let Some(id) = client_id else {
        return Ok(());
    };
    let role = crate::identity::facade::role_of(state.db()?, id).await?;
    if role == Some(Role::Client) {
        return Ok(());
    }
    Err(WorkError::NotAClient.into())
}

/// Stores the metadata document on IPFS.
async fn store_metadata(state: &WorkState, id: Uuid, valid: &Valid) -> AppResult<Stored> {
    let document = Metadata {
        client_id: valid.client_id,
        description: &valid.description,
        id,
        name: &valid.name,
        status: valid.status,
    };
    let bytes = serde_json::to_vec(&document).map_err(AppError::internal)?;
    Ok(crate::ipfs::store::store(state.ipfs()?, &bytes).await?)
}

#[tracing::instrument(name = "work.list_projects", skip_all)]
pub async fn list(
    state: &WorkState,
    caller: &AuthUser,
    query: ProjectQuery,
) -> AppResult<Page<Project>> {
    let limit = page_limit(query.limit).map_err(|e| AppError::Validation(vec![e]))?;
    let rows = sqlx::query_as!(
        Project,
        r#"SELECT id, name, description, status AS "status: ProjectStatus", client_id,
                  ipfs_metadata_cid, created_at, updated_at
           FROM projects
           WHERE ($1::uuid IS NULL OR client_id = $1)
             AND ($2::project_status IS NULL OR status = $2)
             AND ($3::uuid IS NULL OR id > $3)
           ORDER BY id LIMIT $4"#,
        access::client_scope(caller),
        query.status as Option<ProjectStatus>,
        query.cursor,
        i64::from(limit) + 1,
    )
    .fetch_all(state.db()?)
    .await?;
    Ok(Page::of(rows, limit, |p| p.id))
}

#[tracing::instrument(name = "work.create_project", skip_all)]
pub async fn create(
    state: &WorkState,
    caller: &AuthUser,
    input: ProjectInput,
) -> AppResult<Project> {
    let valid = validate(input)?;
    ensure_client(state, valid.client_id).await?;
    let id = Uuid::now_v7();
    let stored = store_metadata(state, id, &valid).await?;
    let cid = stored.file.root.to_string();
    let mut tx = state.db()?.begin().await?;
    record_object(&mut tx, &stored, "application/json", caller.user_id).await?;
    let project = sqlx::query_as!(
        Project,
        r#"INSERT INTO projects (id, name, description, status, client_id, ipfs_metadata_cid)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING id, name, description, status AS "status: ProjectStatus", client_id,
                     ipfs_metadata_cid, created_at, updated_at"#,
        id,
        valid.name,
        valid.description,
        valid.status as ProjectStatus,
        valid.client_id,
        cid,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        WorkAction::ProjectCreated,
        caller,
        id,
        json!({"ipfs_metadata_cid": cid}),
    )
    .await?;
    tx.commit().await?;
    Ok(project)
}

#[tracing::instrument(name = "work.update_project", skip_all)]
pub async fn update(
    state: &WorkState,
    caller: &AuthUser,
    id: Uuid,
    input: ProjectInput,
) -> AppResult<Project> {
    access::visible_project(state, caller, id).await?;
    access::ensure_may(caller, WRITERS)?;
    let valid = validate(input)?;
    ensure_client(state, valid.client_id).await?;
    let stored = store_metadata(state, id, &valid).await?;
    let cid = stored.file.root.to_string();
    let mut tx = state.db()?.begin().await?;
    record_object(&mut tx, &stored, "application/json", caller.user_id).await?;
    let project = sqlx::query_as!(
        Project,
        r#"UPDATE projects SET name = $2, description = $3, status = $4, client_id = $5,
                  ipfs_metadata_cid = $6, updated_at = now()
           WHERE id = $1
           RETURNING id, name, description, status AS "status: ProjectStatus", client_id,
                     ipfs_metadata_cid, created_at, updated_at"#,
        id,
        valid.name,
        valid.description,
        valid.status as ProjectStatus,
        valid.client_id,
        cid,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(WorkError::NotVisible)?;
    audit::record(
        &mut tx,
        WorkAction::ProjectUpdated,
        caller,
        id,
        json!({"ipfs_metadata_cid": cid}),
    )
    .await?;
    tx.commit().await?;
    Ok(project)
}

/// Deletes a project and, by cascade, its tasks, work orders and document records.
#[tracing::instrument(name = "work.delete_project", skip_all)]
pub async fn delete(state: &WorkState, caller: &AuthUser, id: Uuid) -> AppResult<()> {
    access::visible_project(state, caller, id).await?;
    access::ensure_may(caller, DELETERS)?;
    let mut tx = state.db()?.begin().await?;
    let deleted = sqlx::query!("DELETE FROM projects WHERE id = $1", id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(WorkError::NotVisible.into());
    }
    audit::record(&mut tx, WorkAction::ProjectDeleted, caller, id, json!({})).await?;
    tx.commit().await?;
    Ok(())
}
