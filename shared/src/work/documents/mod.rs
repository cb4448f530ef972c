//! Documents on IPFS: upload (optionally attached to a project) and read back, re-verified.

pub mod api;

use super::access::{self, WRITERS};
use super::audit::{self, WorkAction};
use super::dto::Pinned;
use super::state::WorkState;
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use crate::ipfs::store::Stored;
use crate::work::error::WorkError;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

/// Largest document accepted: what fits a Lambda request (6 MB) with room for base64.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;

/// Records a stored CID (once; the first uploader stays its creator) and that this caller
/// stored it (every uploader may read it back). A pin the service still has queued is recorded
/// and followed by a `pin-follow-up` job, in the same transaction.
pub(crate) async fn record_object(
    conn: &mut PgConnection,
    stored: &Stored,
    content_type: &str,
    created_by: Uuid,
) -> AppResult<()> {
    let cid = stored.file.root.to_string();
    let size = stored.file.size;
    sqlx::query!(
        "INSERT INTO ipfs_objects (cid, size, content_type, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (cid) DO NOTHING",
        cid,
        i64::try_from(size).unwrap_or(i64::MAX),
        content_type,
        created_by,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO ipfs_uploads (cid, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        cid,
        created_by,
    )
    .execute(&mut *conn)
    .await?;
    if let Some(request) = &stored.pin_request {
        super::pins::follow(conn, &cid, request).await?;
    }
    Ok(())
}

/// Stores `bytes` on IPFS and records it (and, with `project_id`, the project's document row)
/// in one transaction. Attaching needs a role that writes and a project the caller can see.
#[tracing::instrument(name = "work.pin", skip_all)]
pub async fn pin(
    state: &WorkState,
    caller: &AuthUser,
    project_id: Option<Uuid>,
    content_type: &str,
    bytes: &[u8],
) -> AppResult<Pinned> {
    if let Some(project) = project_id {
        access::visible_project(state, caller, project).await?;
        access::ensure_may(caller, WRITERS)?;
    }
    let stored = crate::ipfs::store::store(state.ipfs()?, bytes).await?;
    let file = &stored.file;
    let cid = file.root.to_string();
    let mut tx = state.db()?.begin().await?;
    record_object(&mut tx, &stored, content_type, caller.user_id).await?;
    if let Some(project) = project_id {
        sqlx::query!(
            "INSERT INTO project_documents (id, project_id, cid, size, content_type, uploaded_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
            Uuid::now_v7(),
            project,
            cid,
            i64::try_from(file.size).unwrap_or(i64::MAX),
            content_type,
            caller.user_id,
        )
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            WorkAction::DocumentAttached,
            caller,
            project,
            json!({"cid": cid, "size": file.size}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Pinned {
        cid,
        size: file.size,
        pinned: stored.pinned,
    })
}

/// The bytes of `cid` and their content type. 400 for text not shaped like a CID; 404 for a CID
/// this API did not store or the caller may not see (STAFF and ADMIN see all; a CLIENT, what
/// they uploaded and what belongs to their projects); 502 when the backend's bytes do not hash
/// to the CID.
#[tracing::instrument(name = "work.ipfs_get", skip_all)]
pub async fn get(state: &WorkState, caller: &AuthUser, text: &str) -> AppResult<(String, Vec<u8>)> {
    if !crate::ipfs::has_cid_shape(text) {
        return Err(AppError::invalid(
            "cid",
            "is not a CIDv1 in base32, nor a CIDv0",
        ));
    }
    let cid = crate::ipfs::parse_cid(text).ok_or(WorkError::NotVisible)?;
    let canonical = cid.to_string();
    let content_type = sqlx::query_scalar!(
        "SELECT o.content_type FROM ipfs_objects o
         WHERE o.cid = $1 AND (
           $2::uuid IS NULL
           OR EXISTS (SELECT 1 FROM ipfs_uploads u WHERE u.cid = o.cid AND u.user_id = $2)
           OR EXISTS (SELECT 1 FROM project_documents d JOIN projects p ON p.id = d.project_id
                      WHERE d.cid = o.cid AND p.client_id = $2)
           OR EXISTS (SELECT 1 FROM projects p WHERE p.ipfs_metadata_cid = o.cid AND p.client_id = $2))",
        canonical,
        access::client_scope(caller),
    )
    .fetch_optional(state.db()?)
    .await?
    .ok_or(WorkError::NotVisible)?;
    let bytes = crate::ipfs::store::read(state.ipfs()?, &cid)
        .await?
        .ok_or_else(|| {
            AppError::BadGateway(format!("the IPFS backend does not have {canonical}"))
        })?;
    Ok((content_type, bytes))
}
