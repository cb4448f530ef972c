//! The document functions (`pin-to-ipfs`, `ipfs-get`): their handlers and OpenAPI paths.
//! Thin: extract, call the rule ([`super`]), choose the status.

use super::{self as documents, MAX_DOCUMENT_BYTES};
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AuthUser, Json, Path, Query, RawBody};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::work::dto::{PinQuery, Pinned};
use crate::work::state::WorkState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `pin-to-ipfs`: store a document (bodies up to the document limit, not the edge's).
pub static PIN_TO_IPFS: FunctionSpec = FunctionSpec {
    name: "pin-to-ipfs",
    trigger: Trigger::Http(&Http::new(WorkState::new, &[endpoint!(pin)]).layer(
        |router: Router<WorkState>| router.layer(DefaultBodyLimit::max(MAX_DOCUMENT_BYTES)),
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &crate::ipfs::config::NEED],
};

/// `ipfs-get`: a document by CID.
pub static IPFS_GET: FunctionSpec = FunctionSpec {
    name: "ipfs-get",
    trigger: Trigger::Http(&Http::new(WorkState::new, &[endpoint!(ipfs_get)])),
    needs: &[&DATABASE, &PUBLIC_KEYS, &crate::ipfs::config::NEED],
};

#[utoipa::path(post, path = "/ipfs", tag = "ipfs", security(("bearer" = [])),
    params(PinQuery),
    request_body(content = String, content_type = "application/octet-stream",
        description = "The document's bytes, in any content type (recorded and served back)"),
    responses(
        (status = 201, description = "Stored and pinned", body = Pinned),
        (status = 403, description = "Attaching to a project needs STAFF or ADMIN"),
        (status = 404, description = "No such project, or not the caller's to see"),
        (status = 413, description = "Larger than 5 MiB"),
        (status = 502, description = "The IPFS backend answered with another CID; nothing is recorded"),
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
        (status = 404, description = "Not a CID this API stored, or not the caller's to see"),
        (status = 502, description = "The backend's bytes do not match the CID"),
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
