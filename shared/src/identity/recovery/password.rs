//! Password recovery and change. Forgot → a mailed single-use link → reset, which revokes every
//! session; change, with the current password, which revokes every other session.

use crate::audit::{self, Entry};
use crate::domain::{Email, Password};
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::{AuthUser, ClientIp};
use crate::identity::abuse::{self, Endpoint};
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::{ChangePassword, ForgotPassword, MailSent, ResetPassword};
use crate::identity::recovery::mailed::{self, Purpose, Removed};
use crate::identity::sessions as session;
use crate::identity::state::IdentityState;
use serde_json::json;
use std::time::Duration;

/// How soon a forgot request may answer. With an account, the request also voids older links
/// and writes the new one, its mail and the mail's job: three more statements, measured at
/// about 1.5x the time of a request without one (scripts/bench-forgot). Both answer no sooner
/// than this, well above either's time, so the time does not tell whether the account exists.
pub const FORGOT_ANSWER_FLOOR: Duration = Duration::from_millis(100);

/// Mails a reset link when an account has the address. The answer is the same either way, and
/// comes no sooner than [`FORGOT_ANSWER_FLOOR`] after the request.
#[tracing::instrument(name = "identity.password_forgot", skip_all)]
pub async fn forgot(
    state: &IdentityState,
    ip: &ClientIp,
    input: ForgotPassword,
) -> AppResult<MailSent> {
    let email = Email::parse(&input.email).map_err(|e| AppError::Validation(vec![e]))?;
    abuse::throttle(state, ip, Endpoint::PasswordForgot, Some(email.as_str())).await?;
    mailed::base_url(state)?;
    abuse::no_sooner_than(FORGOT_ANSWER_FLOOR, request_reset(state, ip, &email)).await?;
    Ok(MailSent { status: "sent" })
}

/// One lookup and one transaction with an audit row; with an account, also the link and its mail.
async fn request_reset(state: &IdentityState, ip: &ClientIp, email: &Email) -> AppResult<()> {
    let mut tx = state.db()?.begin().await?;
    let found = sqlx::query!(
        "SELECT user_id, identifier FROM identities
         WHERE type = 'email_password' AND lower(identifier) = lower($1)",
        email.as_str(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (subject_id, details) = match &found {
        Some(account) => {
            mailed::send(
                &mut tx,
                state,
                Purpose::PasswordReset,
                account.user_id,
                &account.identifier,
            )
            .await?;
            (Some(account.user_id), json!({ "ip": ip.0 }))
        }
        None => (
            None,
            json!({ "ip": ip.0, "identifier": email.as_str(), "account": false }),
        ),
    };
    audit::record(
        &mut tx,
        Entry {
            action: Action::PasswordResetRequested,
            actor_id: None,
            subject_id,
            details,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a new password from a reset link. The token is checked before the new password is
/// hashed, and spent in the transaction that stores the hash, revokes every session, voids
/// the account's other reset links and writes the audit row. A reset proves the address, so it
/// also marks it verified.
///
/// When nobody had proven the address before, whatever else the account signs in with was
/// added while nobody had shown the address to be theirs: a stranger may have signed up with a
/// wallet and linked somebody else's address to it. Those other identities, and a second factor
/// enrolled after the address was linked, are removed in the same transaction (audited), and
/// the mail that confirms the reset names them: the owner can link them again. (A stranger's
/// access token, still unexpired, no longer changes how the account signs in: those routes ask
/// whether its session is live.)
#[tracing::instrument(name = "identity.password_reset", skip_all)]
pub async fn reset(state: &IdentityState, ip: &ClientIp, input: ResetPassword) -> AppResult<()> {
    abuse::throttle(state, ip, Endpoint::PasswordReset, None).await?;
    let password = Password::parse(input.password).map_err(|e| AppError::Validation(vec![e]))?;
    let db = state.db()?;
    mailed::check(db, Purpose::PasswordReset, &input.token).await?;
    let credential = state.hasher().hash(&password).await?;
    let mut tx = db.begin().await?;
    let spent = mailed::spend(&mut tx, Purpose::PasswordReset, &input.token).await?;
    // The identity the link was sent to; unlinked since, the link proves nothing.
    let identity = sqlx::query!(
        "UPDATE identities SET credential = $3
         WHERE user_id = $1 AND type = 'email_password' AND lower(identifier) = lower($2)
         RETURNING id, identifier",
        spent.user_id,
        spent.email,
        credential,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(mailed::invalid_link)?;
    // Was the address proven before this reset? (The users row is locked until commit.)
    let proven = sqlx::query_scalar!(
        "SELECT email_verified FROM (
             SELECT email_verified FROM users WHERE id = $1 AND lower(email) = lower($2)
             FOR UPDATE) proven",
        spent.user_id,
        spent.email,
    )
    .fetch_optional(&mut *tx)
    .await?
    .unwrap_or(false);
    let removed = if proven {
        Removed::default()
    } else {
        remove_unproven(&mut tx, spent.user_id, identity.id).await?
    };
    sqlx::query!(
        "UPDATE users SET email_verified = true, updated_at = now()
         WHERE id = $1 AND lower(email) = lower($2)",
        spent.user_id,
        spent.email,
    )
    .execute(&mut *tx)
    .await?;
    mailed::void(&mut tx, Purpose::PasswordReset, spent.user_id).await?;
    let revoked = session::revoke_all(&mut tx, spent.user_id, None).await?;
    audit::record(
        &mut tx,
        Entry {
            action: Action::PasswordReset,
            actor_id: Some(spent.user_id),
            subject_id: Some(spent.user_id),
            details: json!({
                "sessions_revoked": revoked,
                "ip": ip.0,
                "identities_removed": removed.identities,
                "second_factor_removed": removed.second_factor,
            }),
        },
    )
    .await?;
    mailed::confirm_reset(&mut tx, &identity.identifier, &removed).await?;
    tx.commit().await?;
    // Whoever was guessing the old password is no longer in the way of the owner.
    abuse::clear_failures(state, &identity.identifier).await?;
    Ok(())
}

/// Removes every identity of `user_id` but `keep` (which becomes the primary sign-in), and any
/// second factor, in the reset's transaction.
async fn remove_unproven(
    tx: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
    keep: uuid::Uuid,
) -> AppResult<Removed> {
    let identities = sqlx::query_scalar!(
        r#"DELETE FROM identities WHERE user_id = $1 AND id <> $2
           RETURNING type::text || ':' || identifier AS "removed!""#,
        user_id,
        keep,
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE identities SET is_primary_login = true WHERE id = $1",
        keep
    )
    .execute(&mut *tx)
    .await?;
    // A second factor enrolled after the address was linked was set up by whoever linked it;
    // one from before (a wallet account's own) stays: the mailbox alone must not lift it.
    let second_factor = sqlx::query!(
        "DELETE FROM mfa_totp WHERE user_id = $1
           AND created_at >= (SELECT created_at FROM identities WHERE id = $2)",
        user_id,
        keep,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if second_factor {
        sqlx::query!("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)
            .execute(&mut *tx)
            .await?;
    }
    if !identities.is_empty() || second_factor {
        tracing::warn!(
            user = %user_id,
            removed = identities.len(),
            second_factor,
            "a reset proved an address nobody had proven: the account's other sign-in methods are removed"
        );
    }
    Ok(Removed {
        identities,
        second_factor,
    })
}

/// Changes the caller's password. The current one is checked like a login (a wrong one counts
/// toward the address's lockout); the new hash replaces exactly the hash just checked, and every
/// session but the caller's is revoked, in one transaction.
#[tracing::instrument(name = "identity.password_change", skip_all)]
pub async fn change(
    state: &IdentityState,
    caller: &AuthUser,
    input: ChangePassword,
) -> AppResult<()> {
    let new_password = Password::parse(input.new_password).map_err(|e| {
        AppError::Validation(vec![FieldError {
            field: "new_password".into(),
            ..e
        }])
    })?;
    let db = state.db()?;
    crate::identity::step_up::ensure_live_session(db, caller).await?;
    let identity = sqlx::query!(
        "SELECT id, identifier, credential FROM identities
         WHERE user_id = $1 AND type = 'email_password'",
        caller.user_id,
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(|| {
        AppError::Conflict("the account has no password; link an email identity first".into())
    })?;
    abuse::ensure_unlocked(state, &identity.identifier).await?;
    let (verified, _) = state
        .hasher()
        .verify_and_upgrade(&input.current_password, identity.credential.clone())
        .await?;
    if !verified {
        abuse::record_failure(state, &identity.identifier).await?;
        return Err(AppError::Validation(vec![FieldError::semantic(
            "current_password",
            "is not the account's password",
        )]));
    }
    let credential = state.hasher().hash(&new_password).await?;
    let mut tx = db.begin().await?;
    let changed = sqlx::query!(
        "UPDATE identities SET credential = $2 WHERE id = $1 AND credential = $3",
        identity.id,
        credential,
        identity.credential,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(AppError::Conflict(
            "the password changed meanwhile; sign in again".into(),
        ));
    }
    mailed::void(&mut tx, Purpose::PasswordReset, caller.user_id).await?;
    let revoked = session::revoke_all(&mut tx, caller.user_id, Some(caller.session_id)).await?;
    audit::record(
        &mut tx,
        Entry {
            action: Action::PasswordChanged,
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            details: json!({ "sessions_revoked": revoked }),
        },
    )
    .await?;
    tx.commit().await?;
    abuse::clear_failures(state, &identity.identifier).await?;
    Ok(())
}
