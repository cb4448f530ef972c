//! TOTP MFA (RFC 6238). Enrol → activate with a first code (ten recovery codes, shown once,
//! stored as SHA-256) → every password or wallet sign-in answers an `mfa_token` instead of
//! tokens → POST /login/mfa with a code or a recovery code finishes it, with `amr` listing both
//! methods. A code is accepted once: the account's latest accepted step only moves forward, in a
//! conditional UPDATE, so two uses of one code (even at once) succeed once. Every attempt on an
//! `mfa_token` is counted before its code is looked at, in the one statement that claims the
//! challenge: after [`ATTEMPTS_PER_CHALLENGE`] the challenge is burnt, so however many guesses
//! arrive at once, only that many are ever checked. Wrong codes also count toward the
//! account's lockout (`mfa:<user id>`), and POST /login/mfa has a per-IP limit. The secret is
//! sealed at rest ([`totp`]) and never logged.

pub mod api;
pub mod totp;

use crate::audit::{self, Entry};
use crate::auth::jwt::Subject;
use crate::auth::{Amr, Methods};
use crate::domain::Role;
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::{AuthUser, ClientInfo};
use crate::identity::abuse::{self, Endpoint};
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::{
    LoginMfa, MfaRequired, RecoveryCodes, TokenPair, TotpCode, TotpEnrolment,
};
use crate::identity::mfa::totp::TotpSecret;
use crate::identity::refresh;
use crate::identity::sessions as session;
use crate::identity::state::IdentityState;
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

const INVALID_CHALLENGE: AppError = AppError::Unauthorized(
    "the mfa_token is invalid, expired, already used or out of attempts: sign in again",
);
const WRONG_SECOND_FACTOR: AppError =
    AppError::Unauthorized("the code is wrong or was already used");
const RECOVERY_CODES: usize = 10;
/// Codes (or recovery codes) checked for one `mfa_token`; the next attempt finds it burnt.
pub const ATTEMPTS_PER_CHALLENGE: i32 = 5;

fn lock_key(user_id: Uuid) -> String {
    format!("mfa:{user_id}")
}

fn now_secs() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or_default()
}

fn wrong_code() -> AppError {
    AppError::Validation(vec![FieldError::semantic(
        "code",
        "is not the authenticator's current code, or was already used",
    )])
}

/// A recovery code: 20 base32 characters (100 bits) in groups of five.
fn recovery_code() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    chars
        .chunks(5)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A recovery code's stored form: SHA-256 of it without separators, lower case. 100 random
/// bits need no slow hash.
fn recovery_hash(code: &str) -> Vec<u8> {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(normalized.as_bytes()).to_vec()
}

/// A fresh `mfa_token` and the hash its challenge row keeps.
pub fn mint_challenge() -> (String, Vec<u8>) {
    refresh::generate()
}

/// Records the second step a sign-in awaits, in the caller's transaction, and answers it.
pub async fn challenge(
    conn: &mut PgConnection,
    state: &IdentityState,
    (user_id, identity_id): (Uuid, Uuid),
    method: Amr,
    details: serde_json::Value,
) -> AppResult<MfaRequired> {
    let (token, hash) = mint_challenge();
    sqlx::query!(
        "INSERT INTO mfa_challenges (token_hash, user_id, identity_id, method, details, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        hash,
        user_id,
        identity_id,
        method.as_str(),
        details,
        OffsetDateTime::now_utc() + state.config().mfa.challenge_ttl,
    )
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        Entry {
            action: Action::MfaChallenged,
            actor_id: Some(user_id),
            subject_id: Some(user_id),
            details: json!({ "method": method.as_str(), "identity_id": identity_id }),
        },
    )
    .await?;
    Ok(MfaRequired {
        mfa_required: true,
        mfa_token: token,
    })
}

/// The account's authenticator secret (`active`: the confirmed one; else the pending one).
async fn secret_of(
    state: &IdentityState,
    user_id: Uuid,
    active: bool,
) -> AppResult<Option<TotpSecret>> {
    let key = state.mfa_key()?;
    let sealed = sqlx::query_scalar!(
        "SELECT secret_sealed FROM mfa_totp
         WHERE user_id = $1 AND (activated_at IS NOT NULL) = $2",
        user_id,
        active,
    )
    .fetch_optional(state.db()?)
    .await?;
    sealed.map(|sealed| key.open(&sealed, user_id)).transpose()
}

/// The step `code` matches for `user_id`'s secret, or the failure counted and `wrong`.
async fn checked_step(
    state: &IdentityState,
    user_id: Uuid,
    secret: &TotpSecret,
    code: &str,
    wrong: AppError,
) -> AppResult<i64> {
    match secret
        .matching_step(code, now_secs())
        .and_then(|step| i64::try_from(step).ok())
    {
        Some(step) => Ok(step),
        None => {
            abuse::record_failure(state, &lock_key(user_id)).await?;
            Err(wrong)
        }
    }
}

/// Starts (or restarts) an enrolment: a new secret, sealed, pending until activated.
#[tracing::instrument(name = "identity.mfa_enroll", skip_all)]
pub async fn enroll(state: &IdentityState, caller: &AuthUser) -> AppResult<TotpEnrolment> {
    let key = state.mfa_key()?;
    let db = state.db()?;
    crate::identity::step_up::ensure_live_session(db, caller).await?;
    let label = sqlx::query_scalar!(
        "SELECT coalesce(email, name) AS \"label!\" FROM users WHERE id = $1",
        caller.user_id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::Unauthorized("the account no longer exists"))?;
    let secret = TotpSecret::generate();
    let sealed = key.seal(&secret, caller.user_id)?;
    let stored = sqlx::query!(
        "INSERT INTO mfa_totp (user_id, secret_sealed) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE
             SET secret_sealed = EXCLUDED.secret_sealed, created_at = now(), last_step = 0
             WHERE mfa_totp.activated_at IS NULL",
        caller.user_id,
        sealed,
    )
    .execute(db)
    .await?
    .rows_affected();
    if stored == 0 {
        return Err(AppError::Conflict(
            "TOTP is already active; remove it first (DELETE /mfa/totp)".into(),
        ));
    }
    let issuer = &state.config().mfa.issuer;
    Ok(TotpEnrolment {
        otpauth_uri: secret.otpauth_uri(issuer, &label)?,
        secret: secret.base32(),
    })
}

/// Confirms a pending enrolment with a first code; answers ten recovery codes, once. The
/// account's other sessions are revoked: they were opened without the second factor.
#[tracing::instrument(name = "identity.mfa_activate", skip_all)]
pub async fn activate(
    state: &IdentityState,
    caller: &AuthUser,
    input: TotpCode,
) -> AppResult<RecoveryCodes> {
    crate::identity::step_up::ensure_live_session(state.db()?, caller).await?;
    abuse::ensure_unlocked(state, &lock_key(caller.user_id)).await?;
    let secret = secret_of(state, caller.user_id, false)
        .await?
        .ok_or_else(|| AppError::Conflict("no pending enrolment: POST /mfa/totp/enroll".into()))?;
    let step = checked_step(state, caller.user_id, &secret, &input.code, wrong_code()).await?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| recovery_hash(c)).collect();
    let mut tx = state.db()?.begin().await?;
    let activated = sqlx::query!(
        "UPDATE mfa_totp SET activated_at = now(), last_step = $2
         WHERE user_id = $1 AND activated_at IS NULL",
        caller.user_id,
        step,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if activated == 0 {
        return Err(AppError::Conflict("TOTP was activated meanwhile".into()));
    }
    forget_recovery_codes(&mut tx, caller.user_id).await?;
    sqlx::query!(
        "INSERT INTO mfa_recovery_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])",
        caller.user_id,
        &hashes,
    )
    .execute(&mut *tx)
    .await?;
    // Sessions opened before the second factor existed end here: only this one stays.
    let revoked = session::revoke_all(&mut tx, caller.user_id, Some(caller.session_id)).await?;
    audit::record(
        &mut tx,
        Entry {
            action: Action::MfaActivated,
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            details: json!({ "sessions_revoked": revoked }),
        },
    )
    .await?;
    mail_activation(&mut tx, caller.user_id).await?;
    tx.commit().await?;
    abuse::clear_failures(state, &lock_key(caller.user_id)).await?;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// Tells the account's address, if it has one, that a second factor was turned on: whoever
/// has only the password can turn one on too, and the owner should hear of it (payouts wait
/// `PAYOUT_MFA_MIN_AGE_HOURS` after it for that reason).
async fn mail_activation(tx: &mut sqlx::PgConnection, user_id: Uuid) -> AppResult<()> {
    let email = sqlx::query_scalar!("SELECT email FROM users WHERE id = $1", user_id)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
    let Some(email) = email else {
        return Ok(());
    };
    let text = "Two-factor sign-in (an authenticator app) was turned on for your account, and every other session was signed out.\n\nIf this was not you, someone has your password: reset it now, and ask an administrator to remove the authenticator.\n";
    let html = "<p>Two-factor sign-in (an authenticator app) was turned on for your account, and every other session was signed out.</p><p>If this was not you, someone has your password: reset it now, and ask an administrator to remove the authenticator.</p>";
    crate::mail::send(
        tx,
        &crate::mail::Mail {
            to: &email,
            subject: "Two-factor sign-in was turned on",
            text,
            html,
        },
    )
    .await?;
    Ok(())
}

/// Removes the authenticator and its recovery codes; needs a current code (used up by it).
#[tracing::instrument(name = "identity.mfa_remove", skip_all)]
pub async fn remove(state: &IdentityState, caller: &AuthUser, input: TotpCode) -> AppResult<()> {
    crate::identity::step_up::ensure_live_session(state.db()?, caller).await?;
    abuse::ensure_unlocked(state, &lock_key(caller.user_id)).await?;
    let secret = secret_of(state, caller.user_id, true)
        .await?
        .ok_or(AppError::NotFound)?;
    let step = checked_step(state, caller.user_id, &secret, &input.code, wrong_code()).await?;
    let mut tx = state.db()?.begin().await?;
    let removed = sqlx::query!(
        "DELETE FROM mfa_totp WHERE user_id = $1 AND activated_at IS NOT NULL AND last_step < $2",
        caller.user_id,
        step,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if removed == 0 {
        // The failure is counted on a connection of its own: let this one go first.
        drop(tx);
        abuse::record_failure(state, &lock_key(caller.user_id)).await?;
        return Err(wrong_code());
    }
    forget_recovery_codes(&mut tx, caller.user_id).await?;
    record(&mut tx, caller.user_id, Action::MfaRemoved).await?;
    tx.commit().await?;
    Ok(())
}

async fn forget_recovery_codes(conn: &mut PgConnection, user_id: Uuid) -> AppResult<()> {
    sqlx::query!("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)
        .execute(conn)
        .await?;
    Ok(())
}

async fn record(conn: &mut PgConnection, user_id: Uuid, action: Action) -> AppResult<()> {
    audit::record(
        conn,
        Entry {
            action,
            actor_id: Some(user_id),
            subject_id: Some(user_id),
            details: json!({}),
        },
    )
    .await?;
    Ok(())
}

/// The second step: spends the `mfa_token` and the code (or one recovery code) and opens the
/// session, all in one transaction. The attempt is counted on the challenge before the code is
/// checked; a challenge that has had [`ATTEMPTS_PER_CHALLENGE`] is burnt (401, sign in again).
#[tracing::instrument(name = "identity.mfa_login", skip_all)]
pub async fn finish(
    state: &IdentityState,
    client: &ClientInfo,
    input: LoginMfa,
) -> AppResult<TokenPair> {
    let (mfa_token, second) = match &input {
        LoginMfa::Code { mfa_token, code } => (mfa_token, (Amr::Otp, code.as_str())),
        LoginMfa::RecoveryCode {
            mfa_token,
            recovery_code,
        } => (mfa_token, (Amr::Rec, recovery_code.as_str())),
    };
    abuse::throttle(state, &client.ip, Endpoint::LoginMfa, None).await?;
    state.signer()?; // 503 before any work when this function cannot issue tokens
    let hash = refresh::parse(mfa_token).ok_or(INVALID_CHALLENGE)?;
    let db = state.db()?;
    // Counted before anything is checked, in one statement: concurrent attempts queue on the
    // challenge's row and each re-reads `attempts`, so at most ATTEMPTS_PER_CHALLENGE get by.
    let pending = sqlx::query!(
        r#"UPDATE mfa_challenges c SET attempts = c.attempts + 1
           FROM users u
           WHERE c.token_hash = $1 AND u.id = c.user_id
             AND c.used_at IS NULL AND c.expires_at > now() AND c.attempts < $2
           RETURNING c.user_id, c.identity_id, c.method, c.details,
                     u.role AS "role: Role", u.email_verified"#,
        hash,
        ATTEMPTS_PER_CHALLENGE,
    )
    .fetch_optional(db)
    .await?
    .ok_or(INVALID_CHALLENGE)?;
    let first = Amr::parse(&pending.method).ok_or(INVALID_CHALLENGE)?;
    let user_id = pending.user_id;
    abuse::ensure_unlocked(state, &lock_key(user_id)).await?;
    let step = match second.0 {
        Amr::Otp => {
            let secret = secret_of(state, user_id, true)
                .await?
                .ok_or(INVALID_CHALLENGE)?;
            Some(checked_step(state, user_id, &secret, second.1, WRONG_SECOND_FACTOR).await?)
        }
        _ => None,
    };

    let mut tx = db.begin().await?;
    let spent = sqlx::query!(
        "UPDATE mfa_challenges SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()",
        hash,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if spent == 0 {
        return Err(INVALID_CHALLENGE);
    }
    // Concurrent uses of one code queue on the account's row; only the first moves the step.
    let accepted = if let Some(step) = step {
        sqlx::query!(
            "UPDATE mfa_totp SET last_step = $2
             WHERE user_id = $1 AND activated_at IS NOT NULL AND last_step < $2",
            user_id,
            step,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        sqlx::query!(
            "UPDATE mfa_recovery_codes SET used_at = now()
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            user_id,
            recovery_hash(second.1),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    if accepted == 0 {
        drop(tx);
        abuse::record_failure(state, &lock_key(user_id)).await?;
        return Err(WRONG_SECOND_FACTOR);
    }
    let subject = Subject {
        user_id,
        role: pending.role,
        identity_id: pending.identity_id,
        amr: Methods {
            first,
            second: Some(second.0),
        },
        email_verified: pending.email_verified,
    };
    let tokens = session::sign_in(
        &mut tx,
        state,
        client,
        subject,
        Action::LoginSucceeded,
        pending.details,
    )
    .await?;
    tx.commit().await?;
    abuse::clear_failures(state, &lock_key(user_id)).await?;
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_100_bits_and_hash_the_way_they_are_typed() {
        let code = recovery_code();
        assert_eq!(code.len(), 23);
        assert_eq!(code.matches('-').count(), 3);
        assert_ne!(code, recovery_code());
        assert_eq!(
            recovery_hash(&code),
            recovery_hash(&code.to_uppercase().replace('-', " "))
        );
        assert_ne!(recovery_hash(&code), recovery_hash(&recovery_code()));
    }
}
