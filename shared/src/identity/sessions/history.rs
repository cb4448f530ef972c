//! The login history: an account's sign-in attempts, read from the audit log (registration and
//! successful and failed logins), newest first, in keyset pages over the log's id.

use crate::audit::Action as _;
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::{HistoryQuery, LoginEvent, LoginHistory};
use crate::identity::state::IdentityState;

/// The audit actions that are sign-in attempts.
const SIGN_INS: [Action; 3] = [
    Action::Registered,
    Action::LoginSucceeded,
    Action::LoginFailed,
];

/// A page of the caller's history, or with `user_id` another account's (ADMIN only: anyone else
/// gets 403 whether or not the account exists; an ADMIN naming no account gets 404).
#[tracing::instrument(name = "identity.login_history", skip_all)]
pub async fn page(
    state: &IdentityState,
    caller: &AuthUser,
    query: HistoryQuery,
) -> AppResult<LoginHistory> {
    let limit =
        crate::domain::page_limit(query.limit).map_err(|e| AppError::Validation(vec![e]))?;
    let before = match query.cursor.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|id| *id >= 0)
                .ok_or_else(|| AppError::invalid("cursor", "is not a cursor this API issued"))?,
        ),
    };
    let db = state.db()?;
    let subject = match query.user_id {
        Some(other) if other != caller.user_id => {
            if caller.role != Role::Admin {
                return Err(AppError::Forbidden);
            }
            let exists = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS "exists!""#,
                other
            )
            .fetch_one(db)
            .await?;
            if !exists {
                return Err(AppError::NotFound);
            }
            other
        }
        _ => caller.user_id,
    };
    let actions: Vec<String> = SIGN_INS.iter().map(|a| a.name().to_owned()).collect();
    let mut rows = sqlx::query!(
        r#"SELECT id, occurred_at, action, details->>'method' AS method,
                  details->>'ip' AS ip, details->>'user_agent' AS user_agent
           FROM audit_log
           WHERE subject_id = $1 AND action = ANY($2) AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $4"#,
        subject,
        &actions,
        before,
        i64::from(limit) + 1,
    )
    .fetch_all(db)
    .await?;
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > page {
        rows.truncate(page);
        rows.last().map(|row| row.id.to_string())
    } else {
        None
    };
    let failed = Action::LoginFailed.name();
    let items = rows
        .into_iter()
        .map(|row| LoginEvent {
            at: row.occurred_at,
            method: row.method.unwrap_or_else(|| "unknown".to_owned()),
            success: row.action != failed,
            ip: row.ip,
            user_agent: row.user_agent,
        })
        .collect();
    Ok(LoginHistory { items, next_cursor })
}
