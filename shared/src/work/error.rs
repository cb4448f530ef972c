//! The work area's own refusals. Each becomes the HTTP problem only by
//! `From<WorkError> for AppError`, at the edge: what is not the caller's to see is a 404 (as
//! if it did not exist), a change their role may not make a 403, and a person who cannot take
//! a role in a project a 422 naming the field.

use crate::error::{AppError, FieldError};

/// (A 404 and a 403 carry the core's fixed texts, so that an answer says no more than its
/// status; the texts here are for logs and tests.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error("no such project, item or document, or not the caller's to see")]
    NotVisible,
    #[error("the caller's role may not make this change")]
    NotAllowed,
    #[error("is not a CLIENT user")]
    NotAClient,
    #[error("is not STAFF, ADMIN or this project's client")]
    NotAnAssignee,
}

impl From<WorkError> for AppError {
    fn from(err: WorkError) -> Self {
        let field =
            |name: &str| AppError::Validation(vec![FieldError::semantic(name, err.to_string())]);
        match err {
            WorkError::NotVisible => AppError::NotFound,
            WorkError::NotAllowed => AppError::Forbidden,
            WorkError::NotAClient => field("client_id"),
            WorkError::NotAnAssignee => field("assignee_id"),
        }
    }
}
