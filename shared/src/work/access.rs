//! Who sees and changes what, once for the whole area:
//! - a CLIENT sees only the projects whose `client_id` is theirs, and everything under them;
//!   STAFF and ADMIN see all;
//! - only STAFF and ADMIN write; only an ADMIN deletes a project;
//! - an object outside the caller's sight is a 404, whatever the method, so a refusal never
//!   tells that it exists; a visible object the role may not change is a 403.

use super::model::{Project, ProjectStatus};
use super::state::WorkState;
use crate::domain::Role;
use crate::error::AppResult;
use crate::extract::AuthUser;
use crate::work::error::WorkError;
use uuid::Uuid;

/// The `client_id` a caller's queries are limited to: `None` for STAFF and ADMIN (all).
pub fn client_scope(caller: &AuthUser) -> Option<Uuid> {
    (caller.role == Role::Client).then_some(caller.user_id)
}

/// For a change to an object the caller can see: 403 unless their role may make it.
pub fn ensure_may(caller: &AuthUser, allowed: &[Role]) -> AppResult<()> {
    if allowed.contains(&caller.role) {
        Ok(())
    } else {
        Err(WorkError::NotAllowed.into())
    }
}

/// The project if the caller may see it; 404 otherwise (never telling whether it exists).
pub(crate) async fn visible_project(
    state: &WorkState,
    caller: &AuthUser,
    id: Uuid,
) -> AppResult<Project> {
    sqlx::query_as!(
        Project,
        r#"SELECT id, name, description, status AS "status: ProjectStatus", client_id,
                  ipfs_metadata_cid, created_at, updated_at
           FROM projects WHERE id = $1 AND ($2::uuid IS NULL OR client_id = $2)"#,
        id,
        client_scope(caller),
    )
    .fetch_optional(state.db()?)
    .await?
    .ok_or(WorkError::NotVisible.into())
}

pub const WRITERS: &[Role] = &[Role::Staff, Role::Admin];
pub const DELETERS: &[Role] = &[Role::Admin];
