//! Linking and unlinking identities on a signed-in account.

use crate::audit::{self, Entry};
use crate::domain::{Email, Password};
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::{AuthUser, ClientIp};
use crate::identity::abuse::{self, Endpoint};
use crate::identity::account::identities_of;
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::{Identities, LinkIdentity};
use crate::identity::error::{self, IdentityError};
use crate::identity::model::{Identity, IdentityType};
use crate::identity::recovery::verification;
use crate::identity::state::IdentityState;
use crate::identity::wallet::siwe::SiweMessage;
use crate::identity::wallet::{insert_wallet, prove, spend_nonce};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

async fn identity(conn: &mut PgConnection, user_id: Uuid, id: Uuid) -> AppResult<Identity> {
    identities_of(conn, user_id)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("linked identity {id} vanished")))
}

/// Links a new identity after a fresh proof of it. An identity owned by anyone is a 409.
#[tracing::instrument(name = "identity.link", skip_all)]
pub async fn link(
    state: &IdentityState,
    ip: &ClientIp,
    caller: &AuthUser,
    input: LinkIdentity,
) -> AppResult<Identity> {
    let db = state.db()?;
    let (identity_id, kind) = match input {
        LinkIdentity::EmailPassword { email, password } => {
            abuse::throttle(state, ip, Endpoint::Link, Some(email.trim())).await?;
            let mut errors: Vec<FieldError> = Vec::new();
            let email = Email::parse(&email).map_err(|e| errors.push(e)).ok();
            let password = Password::parse(password).map_err(|e| errors.push(e)).ok();
            let (Some(email), Some(password)) = (email, password) else {
                return Err(AppError::Validation(errors));
            };
            let credential = state.hasher().hash(&password).await?;
            let mut tx = db.begin().await?;
            live_and_locked(&mut tx, caller).await?;
            // One email identity per account: users.email mirrors it.
            let has_email = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM identities
                   WHERE user_id = $1 AND type = 'email_password') AS "exists!""#,
                caller.user_id
            )
            .fetch_one(&mut *tx)
            .await?;
            if has_email {
                return Err(IdentityError::AlreadyHasEmail.into());
            }
            let id = sqlx::query_scalar!(
                "INSERT INTO identities (id, user_id, type, identifier, credential, is_primary_login)
                 VALUES ($1, $2, 'email_password', $3, $4, false) RETURNING id",
                Uuid::now_v7(),
                caller.user_id,
                email.as_str(),
                credential,
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(error::db)?;
            sqlx::query!(
                "UPDATE users SET email = $2, email_verified = false, updated_at = now()
                 WHERE id = $1",
                caller.user_id,
                email.as_str()
            )
            .execute(&mut *tx)
            .await?;
            verification::on_new_address(&mut tx, state, caller.user_id, email.as_str()).await?;
            record(
                &mut tx,
                caller,
                Action::IdentityLinked,
                id,
                "email_password",
            )
            .await?;
            tx.commit().await?;
            (id, "email_password")
        }
        LinkIdentity::BlockchainAddress { message, signature } => {
            let message = SiweMessage::parse(&message)?;
            let address = message.address().to_checksum(None);
            abuse::throttle(state, ip, Endpoint::Link, Some(&address)).await?;
            let (proof, nonce_expires) = prove(state, &message, &signature).await?;
            let mut tx = db.begin().await?;
            live_and_locked(&mut tx, caller).await?;
            spend_nonce(&mut tx, &proof, nonce_expires).await?;
            let id = insert_wallet(&mut tx, caller.user_id, &proof, false).await?;
            record(
                &mut tx,
                caller,
                Action::IdentityLinked,
                id,
                "blockchain_address",
            )
            .await?;
            tx.commit().await?;
            (id, "blockchain_address")
        }
    };
    tracing::info!(user_id = %caller.user_id, %identity_id, kind, "identity linked");
    identity(&mut *db.acquire().await?, caller.user_id, identity_id).await
}

/// Unlinks one of the caller's identities. The last one cannot go (409): the caller's identity
/// rows are locked before counting, so concurrent unlinks queue and at least one remains.
/// Sessions opened through the identity are revoked.
#[tracing::instrument(name = "identity.unlink", skip_all)]
pub async fn unlink(
    state: &IdentityState,
    caller: &AuthUser,
    identity_id: Uuid,
) -> AppResult<Identities> {
    crate::identity::step_up::ensure_live_session(state.db()?, caller).await?;
    let mut tx = state.db()?.begin().await?;
    let owned = sqlx::query!(
        r#"SELECT id, type AS "kind: IdentityType", is_primary_login
           FROM identities WHERE user_id = $1 ORDER BY id FOR UPDATE"#,
        caller.user_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let target = owned
        .iter()
        .find(|i| i.id == identity_id)
        .ok_or(AppError::NotFound)?;
    if owned.len() <= 1 {
        return Err(IdentityError::LastIdentity.into());
    }
    let revoked = sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE identity_id = $1 AND revoked_at IS NULL",
        identity_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query!("DELETE FROM identities WHERE id = $1", identity_id)
        .execute(&mut *tx)
        .await?;
    if target.is_primary_login {
        sqlx::query!(
            "UPDATE identities SET is_primary_login = true
             WHERE id = (SELECT id FROM identities WHERE user_id = $1 ORDER BY created_at, id LIMIT 1)",
            caller.user_id
        )
        .execute(&mut *tx)
        .await?;
    }
    if target.kind == IdentityType::EmailPassword {
        sqlx::query!(
            "UPDATE users SET email = NULL, email_verified = false, updated_at = now() WHERE id = $1",
            caller.user_id
        )
        .execute(&mut *tx)
        .await?;
    }
    audit::record(
        &mut tx,
        Entry {
            action: Action::IdentityUnlinked,
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            details: json!({ "identity_id": identity_id, "sessions_revoked": revoked }),
        },
    )
    .await?;
    let identities = identities_of(&mut tx, caller.user_id).await?;
    tx.commit().await?;
    Ok(Identities { identities })
}

/// Serialises identity changes on one account (check-then-insert stays true under concurrency).
/// Locks the caller's account for the rest of `conn`'s transaction, then checks that their
/// session is live. A password reset holds the same lock while it revokes the sessions and
/// removes what an unproven address's account had linked, so a link either commits first (and
/// the reset removes it) or finds its session revoked (401).
async fn live_and_locked(conn: &mut PgConnection, caller: &AuthUser) -> AppResult<()> {
    lock_account(&mut *conn, caller.user_id).await?;
    crate::identity::step_up::ensure_live_session(&mut *conn, caller).await
}

async fn lock_account(conn: &mut PgConnection, user_id: Uuid) -> AppResult<()> {
    sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", user_id)
        .fetch_optional(conn)
        .await?
        .ok_or(AppError::Unauthorized("the account no longer exists"))?;
    Ok(())
}

async fn record(
    conn: &mut PgConnection,
    caller: &AuthUser,
    action: Action,
    identity_id: Uuid,
    kind: &str,
) -> AppResult<()> {
    audit::record(
        conn,
        Entry {
            action,
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            details: json!({ "identity_id": identity_id, "type": kind }),
        },
    )
    .await?;
    Ok(())
}
