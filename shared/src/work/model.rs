//! The work area's records, as the contract shows them.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "project_status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProjectStatus {
    Planning,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub status: ProjectStatus,
    /// The CLIENT this project is for, if any: they see it and everything under it.
    pub client_id: Option<Uuid>,
    /// The CID of the project's metadata document (canonical JSON of id, name, description,
    /// status and client_id), stored on IPFS at every create and update.
    pub ipfs_metadata_cid: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Todo,
    InProgress,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkOrderStatus {
    Open,
    InProgress,
    Done,
    Cancelled,
}

// Dates travel as `YYYY-MM-DD` (RFC 3339 full-date).
time::serde::format_description!(pub(crate) date_format, Date, "[year]-[month]-[day]");

/// A task or a work order: an item under a project, with the statuses of its kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Item<S> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: S,
    #[serde(with = "date_format::option")]
    #[schema(value_type = Option<Date>)]
    pub due_date: Option<Date>,
    /// STAFF, ADMIN or the project's client.
    pub assignee_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

pub use crate::domain::Page;
