//! Request and response bodies of the work area.

use super::model::ProjectStatus;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 10_000;

fn name_schema() -> utoipa::openapi::schema::Object {
    crate::domain::line_schema(NAME_MAX).build()
}

fn description_schema() -> utoipa::openapi::schema::Object {
    crate::domain::text_schema(DESCRIPTION_MAX).build()
}

/// A project as written by STAFF or ADMIN: the whole of it on create and on replace (PUT).
/// Fields the server owns (`id`, `ipfs_metadata_cid`, the times) are refused as unknown.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    #[schema(schema_with = name_schema)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: String,
    /// Default `PLANNING`.
    #[serde(default)]
    pub status: Option<ProjectStatus>,
    /// A CLIENT user (else 422), or null.
    #[serde(default)]
    pub client_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    /// Only projects in this status.
    pub status: Option<ProjectStatus>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// A task or a work order as written by STAFF or ADMIN: the whole of it on create and on
/// replace (PUT). `id`, `project_id` and the times are the server's, refused as unknown.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
pub struct ItemInput<S> {
    #[schema(schema_with = name_schema)]
    pub title: String,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: String,
    /// Default: the kind's first status (`TODO`, `OPEN`).
    #[serde(default)]
    pub status: Option<S>,
    /// `YYYY-MM-DD`, or null.
    #[serde(default, with = "super::model::date_format::option")]
    #[schema(value_type = Option<time::Date>)]
    pub due_date: Option<time::Date>,
    /// A STAFF or ADMIN user, or the project's client (else 422); or null.
    #[serde(default)]
    pub assignee_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery<S: ToSchema> {
    /// Only items in this status.
    pub status: Option<S>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PinQuery {
    /// Attach the document to this project (STAFF or ADMIN, on a project they can see).
    pub project_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pinned {
    /// CIDv1, base32: what `ipfs add --cid-version=1` gives for the same bytes.
    pub cid: String,
    pub size: u64,
    /// True once the backend has pinned it; false while a pinning service still has the
    /// request queued (it carries on without us).
    pub pinned: bool,
}
