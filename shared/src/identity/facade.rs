//! The identity area's public facade for the areas above it: what they may ask about accounts,
//! without reaching into identity's tables or rules.

use crate::domain::Role;
use crate::error::AppResult;
use alloy::primitives::Address;
use sqlx::PgExecutor;
use uuid::Uuid;

/// The wallets account `user_id` has proven it controls: its `blockchain_address` identities,
/// each added only by a Sign-In with Ethereum signature (EIP-191, or EIP-1271 for a contract
/// wallet) of that address.
pub async fn proven_wallets(db: impl PgExecutor<'_>, user_id: Uuid) -> AppResult<Vec<Address>> {
    let identifiers = sqlx::query_scalar!(
        "SELECT identifier FROM identities WHERE user_id = $1 AND type = 'blockchain_address'",
        user_id
    )
    .fetch_all(db)
    .await?;
    // Stored EIP-55; one that does not parse cannot pay anything.
    Ok(identifiers.iter().filter_map(|i| i.parse().ok()).collect())
}

/// The role of account `user_id` now, or `None` when there is no such account. What the work
/// area asks before it makes someone a project's client or an item's assignee.
pub async fn role_of(db: impl PgExecutor<'_>, user_id: Uuid) -> AppResult<Option<Role>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT role AS "role: Role" FROM users WHERE id = $1"#,
        user_id
    )
    .fetch_optional(db)
    .await?)
}

/// Step-up for money: the caller's role now, a recent second factor, a live session (see
/// [`super::step_up`]).
pub use super::step_up::for_money;

/// How to address account `user_id`: its name and, if it has an email identity, its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
}

/// The contact of account `user_id`, or `None` when there is no such account: what the books
/// print for a client without billing details and where they mail its invoices.
pub async fn contact(db: impl PgExecutor<'_>, user_id: Uuid) -> AppResult<Option<Contact>> {
    Ok(
        sqlx::query!("SELECT name, email FROM users WHERE id = $1", user_id)
            .fetch_optional(db)
            .await?
            .map(|row| Contact {
                name: row.name,
                email: row.email,
            }),
    )
}
