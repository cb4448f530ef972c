//! Email verification: registration and linking an email mail a link; the link's token marks the
//! address verified, if the account still has that address. `email_verified` is on the profile
//! and in every access token issued afterwards; `REQUIRE_VERIFIED_EMAIL` makes password login
//! wait for it.

use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult};
use crate::extract::{AuthUser, ClientIp};
use crate::identity::abuse::{self, Endpoint};
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::VerifyEmail;
use crate::identity::recovery::mailed::{self, Purpose};
use crate::identity::state::IdentityState;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

/// The problem a password login gets while `REQUIRE_VERIFIED_EMAIL` is on and the address is
/// not verified yet (only after the password was right).
pub const NOT_VERIFIED: AppError = AppError::Refused {
    kind: "email-not-verified",
    detail: "confirm your email address first (POST /email/verify/resend sends the link again)",
};

/// Mails a verification link for a new address, in the caller's transaction. Without
/// `PUBLIC_BASE_URL` nothing is sent (the address stays unverified; resend answers 503).
pub async fn on_new_address(
    conn: &mut PgConnection,
    state: &IdentityState,
    user_id: Uuid,
    email: &str,
) -> AppResult<()> {
    if mailed::base_url(state).is_err() {
        tracing::warn!("PUBLIC_BASE_URL is not set: no verification mail is sent");
        return Ok(());
    }
    mailed::send(conn, state, Purpose::EmailVerification, user_id, email).await
}

/// Marks the address the token was sent to verified, if the account still has it.
#[tracing::instrument(name = "identity.verify_email", skip_all)]
pub async fn verify(state: &IdentityState, ip: &ClientIp, input: VerifyEmail) -> AppResult<()> {
    abuse::throttle(state, ip, Endpoint::VerifyEmail, None).await?;
    let mut tx = state.db()?.begin().await?;
    let spent = mailed::spend(&mut tx, Purpose::EmailVerification, &input.token).await?;
    let marked = sqlx::query!(
        "UPDATE users SET email_verified = true, updated_at = now()
         WHERE id = $1 AND lower(email) = lower($2)",
        spent.user_id,
        spent.email,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if marked == 0 {
        return Err(mailed::invalid_link());
    }
    mailed::void(&mut tx, Purpose::EmailVerification, spent.user_id).await?;
    audit::record(
        &mut tx,
        Entry {
            action: Action::EmailVerified,
            actor_id: Some(spent.user_id),
            subject_id: Some(spent.user_id),
            details: json!({ "email": spent.email }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Mails the caller a new verification link (voiding the older ones).
#[tracing::instrument(name = "identity.resend_verification", skip_all)]
pub async fn resend(state: &IdentityState, ip: &ClientIp, caller: &AuthUser) -> AppResult<()> {
    abuse::throttle(
        state,
        ip,
        Endpoint::VerifyResend,
        Some(&caller.user_id.to_string()),
    )
    .await?;
    mailed::base_url(state)?;
    let mut tx = state.db()?.begin().await?;
    let user = sqlx::query!(
        "SELECT email, email_verified FROM users WHERE id = $1 FOR UPDATE",
        caller.user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::Unauthorized("the account no longer exists"))?;
    let email = match (user.email, user.email_verified) {
        (None, _) => {
            return Err(AppError::Conflict(
                "the account has no email address; link one first".into(),
            ));
        }
        (Some(_), true) => {
            return Err(AppError::Conflict(
                "the email address is already verified".into(),
            ));
        }
        (Some(email), false) => email,
    };
    mailed::send(
        &mut tx,
        state,
        Purpose::EmailVerification,
        caller.user_id,
        &email,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
