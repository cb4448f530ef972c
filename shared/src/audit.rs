//! The audit log. Every row is written in the same transaction as the change it records.
//!
//! The core knows only how to write a row; each area names its own actions (an enum that
//! implements [`Action`]), e.g. `identity::IdentityAction`. The row itself is written in one
//! place, the database function `audit_record` (migration `20261203000002`): [`record`] calls
//! it, and so do the sign-in statements that store a token and its audit row in one round trip.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// A kind of audited event, named `area.event` (e.g. `login.failed`).
pub trait Action: Copy {
    fn name(self) -> &'static str;
}

/// One audit row: who did what to whom, with details that never hold a secret.
pub struct Entry<A: Action> {
    pub action: A,
    pub actor_id: Option<Uuid>,
    pub subject_id: Option<Uuid>,
    pub details: Value,
}

pub async fn record<A: Action>(
    conn: &mut PgConnection,
    entry: Entry<A>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT audit_record($1, $2, $3, $4)",
        entry.action.name(),
        entry.actor_id,
        entry.subject_id,
        entry.details,
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// The audit row of a change `caller` made to `subject`, in the change's transaction: what
/// every area writes for its users' changes.
pub async fn caller_did<A: Action>(
    conn: &mut PgConnection,
    action: A,
    caller: &crate::extract::AuthUser,
    subject: Uuid,
    details: Value,
) -> Result<(), sqlx::Error> {
    record(
        conn,
        Entry {
            action,
            actor_id: Some(caller.user_id),
            subject_id: Some(subject),
            details,
        },
    )
    .await
}
