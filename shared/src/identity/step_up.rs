//! Step-up for money (RFC 9470). A route that moves money asks for more than a valid token:
//! the caller's role as the database has it now (a demotion takes effect at once, not when the
//! token expires), and a second factor (`otp` or `rec` in `amr`) whose sign-in (`auth_time`)
//! is at most [`SECOND_FACTOR_MAX_AGE`] old. Otherwise 403, or 401 with
//! `WWW-Authenticate: Bearer error="insufficient_user_authentication"` and `max_age`.

use crate::auth::Amr;
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use sqlx::{PgExecutor, PgPool};
use std::time::Duration;
use time::OffsetDateTime;

/// How long ago a second factor may have been used for a step that moves money.
pub const SECOND_FACTOR_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// A second factor was part of the sign-in, and the sign-in was at most `max_age` before `now`
/// (unix seconds); otherwise the RFC 9470 401.
pub fn ensure_recent_second_factor(
    amr: &[Amr],
    auth_time: i64,
    now: i64,
    max_age: Duration,
) -> AppResult<()> {
    let max_age_secs = max_age.as_secs();
    let second = amr.iter().any(|m| matches!(m, Amr::Otp | Amr::Rec));
    let max_age_signed = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
    let recent = auth_time > 0 && now.saturating_sub(auth_time) <= max_age_signed;
    if second && recent {
        Ok(())
    } else {
        Err(AppError::StepUpRequired { max_age_secs })
    }
}

/// Refuses a token whose session has ended (revoked by a reset, a sign-out, MFA activation or
/// token reuse) or whose sign-in identity is gone, though the token itself has not expired
/// yet. Access tokens are checked by signature alone on most routes (no database read); the
/// routes that change how an account signs in, or move money, ask this too, so that a reset
/// takes effect on them at once rather than when the stranger's token expires.
pub async fn ensure_live_session(db: impl PgExecutor<'_>, caller: &AuthUser) -> AppResult<()> {
    let live = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM refresh_tokens
                          WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL
                            AND rotated_at IS NULL AND expires_at > now())
              AND EXISTS (SELECT 1 FROM identities WHERE id = $3 AND user_id = $2) AS "live!""#,
        caller.session_id,
        caller.user_id,
        caller.identity_id,
    )
    .fetch_one(db)
    .await?;
    if live {
        Ok(())
    } else {
        Err(AppError::Unauthorized(
            "this session has ended; sign in again",
        ))
    }
}

/// The 403 of a second factor turned on too recently to approve money.
pub const SECOND_FACTOR_TOO_NEW: AppError = AppError::Refused {
    kind: "second-factor-too-new",
    detail: "two-factor sign-in was turned on for this account too recently to approve this (PAYOUT_MFA_MIN_AGE_HOURS): the account's owner was mailed when it was turned on, and has that long to react",
};

/// Admits `caller` to a step that moves money: their role now (read from the database, not
/// the token) is one of `allowed` (else 403); they used a second factor within
/// [`SECOND_FACTOR_MAX_AGE`] (else 401, step up), one that was turned on at least
/// `min_enrolment_age` ago (else 403: a password thief could turn one on); and their session
/// is live.
pub async fn for_money(
    db: &PgPool,
    caller: &AuthUser,
    allowed: &[Role],
    min_enrolment_age: Duration,
) -> AppResult<()> {
    let account = sqlx::query!(
        r#"SELECT u.role AS "role: Role", t.activated_at AS "activated_at?"
           FROM users u LEFT JOIN mfa_totp t ON t.user_id = u.id WHERE u.id = $1"#,
        caller.user_id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::Unauthorized("the account no longer exists"))?;
    if !allowed.contains(&account.role) {
        return Err(AppError::Forbidden);
    }
    let now = OffsetDateTime::now_utc();
    ensure_recent_second_factor(
        &caller.amr,
        caller.auth_time,
        now.unix_timestamp(),
        SECOND_FACTOR_MAX_AGE,
    )?;
    let old_enough = account
        .activated_at
        .is_some_and(|at| now - at >= min_enrolment_age);
    if !old_enough {
        return Err(SECOND_FACTOR_TOO_NEW);
    }
    ensure_live_session(db, caller).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn step_up_needed(result: AppResult<()>) -> bool {
        matches!(result, Err(AppError::StepUpRequired { max_age_secs: 300 }))
    }

    #[test]
    fn a_recent_code_or_recovery_code_passes() {
        for amr in [[Amr::Pwd, Amr::Otp], [Amr::Siwe, Amr::Rec]] {
            assert!(ensure_recent_second_factor(&amr, NOW - 300, NOW, FIVE_MINUTES).is_ok());
        }
    }

    #[test]
    fn one_factor_is_never_enough_however_recent() {
        for amr in [vec![Amr::Pwd], vec![Amr::Siwe], vec![]] {
            assert!(step_up_needed(ensure_recent_second_factor(
                &amr,
                NOW,
                NOW,
                FIVE_MINUTES
            )));
        }
    }

    #[test]
    fn a_second_factor_used_too_long_ago_or_at_no_known_time_needs_a_step_up() {
        let amr = [Amr::Pwd, Amr::Otp];
        assert!(step_up_needed(ensure_recent_second_factor(
            &amr,
            NOW - 301,
            NOW,
            FIVE_MINUTES
        )));
        assert!(step_up_needed(ensure_recent_second_factor(
            &amr,
            0,
            NOW,
            FIVE_MINUTES
        )));
    }
}
