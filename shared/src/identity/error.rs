//! Identity's own errors, and the unique constraints they map from. Turned into the HTTP
//! problem only by `From<IdentityError> for AppError`, at the edge.

use crate::error::{AppError, unique_violation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this identity already belongs to an account")]
    IdentityTaken,
    #[error("this account already has an email identity")]
    AlreadyHasEmail,
    #[error("the last identity of an account cannot be unlinked")]
    LastIdentity,
    #[error("the last ADMIN cannot lose the role; promote another user first")]
    LastAdmin,
}

impl From<IdentityError> for AppError {
    fn from(err: IdentityError) -> Self {
        AppError::Conflict(err.to_string())
    }
}

/// Identity's unique constraints, by name (never by message text).
const CONFLICTS: &[(&str, IdentityError)] = &[
    ("identities_email_lower_key", IdentityError::EmailTaken),
    (
        "identities_type_identifier_key",
        IdentityError::IdentityTaken,
    ),
    (
        "identities_one_email_per_user_key",
        IdentityError::AlreadyHasEmail,
    ),
];

/// A database error from an identity write: a known conflict becomes its [`IdentityError`];
/// anything else is the core's mapping (503 when the database is down, else 500).
pub fn db(err: sqlx::Error) -> AppError {
    let known = unique_violation(&err)
        .and_then(|name| CONFLICTS.iter().find(|(c, _)| *c == name))
        .map(|(_, conflict)| *conflict);
    match known {
        Some(conflict) => conflict.into(),
        None => err.into(),
    }
}
