//! The work area's one public facade for the areas above it (payments): what they may ask about
//! projects, without reaching into the work area's tables or rules. Answers follow
//! [`super::access`]: a CLIENT sees only the projects whose `client_id` is theirs.

use super::access;
use crate::error::AppResult;
use crate::extract::AuthUser;
use sqlx::PgExecutor;
use uuid::Uuid;

/// Whether project `id` exists and `caller` may see it.
pub async fn project_visible(
    db: impl PgExecutor<'_>,
    caller: &AuthUser,
    id: Uuid,
) -> AppResult<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM projects
                          WHERE id = $1 AND ($2::uuid IS NULL OR client_id = $2)) AS "visible!""#,
        id,
        access::client_scope(caller),
    )
    .fetch_one(db)
    .await?)
}

/// The projects `caller` sees: `None` for STAFF and ADMIN (every project).
pub async fn visible_projects(
    db: impl PgExecutor<'_>,
    caller: &AuthUser,
) -> AppResult<Option<Vec<Uuid>>> {
    let Some(client) = access::client_scope(caller) else {
        return Ok(None);
    };
    let ids = sqlx::query_scalar!("SELECT id FROM projects WHERE client_id = $1", client)
        .fetch_all(db)
        .await?;
    Ok(Some(ids))
}

/// The client account project `id` is for, if it has one (the account invoices of it bill).
pub async fn project_client(db: impl PgExecutor<'_>, id: Uuid) -> AppResult<Option<Uuid>> {
    Ok(
        sqlx::query_scalar!("SELECT client_id FROM projects WHERE id = $1", id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}
