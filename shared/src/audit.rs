//! The audit log. Every row is written in the same transaction as the change it records.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Registered,
    AdminCreated,
    LoginSucceeded,
    LoginFailed,
    TokenRefreshed,
    RefreshReuseDetected,
    LoggedOut,
    RoleChanged,
    LockedOut,
    IdentityLinked,
    IdentityUnlinked,
    ProofRejected,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "user.registered",
            Self::AdminCreated => "user.admin_created",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::TokenRefreshed => "token.refreshed",
            Self::RefreshReuseDetected => "token.reuse_detected",
            Self::LoggedOut => "token.logged_out",
            Self::RoleChanged => "user.role_changed",
            Self::LockedOut => "login.locked_out",
            Self::IdentityLinked => "identity.linked",
            Self::IdentityUnlinked => "identity.unlinked",
            Self::ProofRejected => "siwe.rejected",
        }
    }
}

/// One audit row: who did what to whom, with details that never hold a secret.
pub struct Entry {
    pub action: Action,
    pub actor_id: Option<Uuid>,
    pub subject_id: Option<Uuid>,
    pub details: Value,
}

pub async fn record(conn: &mut PgConnection, entry: Entry) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (action, actor_id, subject_id, details) VALUES ($1, $2, $3, $4)",
        entry.action.as_str(),
        entry.actor_id,
        entry.subject_id,
        entry.details,
    )
    .execute(conn)
    .await?;
    Ok(())
}
