//! Abuse protection for the credential endpoints: per-IP and per-identifier rate limits, and
//! per-identifier lockout with exponential back-off. The counters live in the ephemeral store,
//! so every instance shares them.

use super::audit::IdentityAction as Action;
use super::state::IdentityState;
use crate::audit::{self, Entry};
use crate::error::{AppError, AppResult};
use crate::extract::ClientIp;
use crate::store::{RateDecision, RateLimiter};
use serde_json::json;
use std::time::Duration;

const WINDOW: Duration = Duration::from_secs(60);

/// The endpoint a limit counts against.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    Register,
    Login,
    /// The second step of a sign-in (POST /login/mfa).
    LoginMfa,
    Nonce,
    Link,
    PasswordForgot,
    PasswordReset,
    VerifyEmail,
    VerifyResend,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::LoginMfa => "login-mfa",
            Self::Nonce => "nonce",
            Self::Link => "link",
            Self::PasswordForgot => "password-forgot",
            Self::PasswordReset => "password-reset",
            Self::VerifyEmail => "verify-email",
            Self::VerifyResend => "verify-resend",
        }
    }
}

fn limited(decision: RateDecision) -> AppResult<()> {
    match decision {
        RateDecision::Allowed => Ok(()),
        RateDecision::Limited { retry_after } => Err(AppError::RateLimited {
            retry_after_secs: retry_after.as_secs().max(1),
        }),
    }
}

/// Counts one request from `ip` (and for `identifier`, when given) against `endpoint`'s limits,
/// in the shared store (every instance counts together).
pub async fn throttle(
    state: &IdentityState,
    ip: &ClientIp,
    endpoint: Endpoint,
    identifier: Option<&str>,
) -> AppResult<()> {
    let limiter = state.stores().rate_limiter()?;
    count(limiter, state, ip, endpoint, identifier).await
}

/// The same limits counted in this instance's memory: for endpoints that write nothing, where a
/// shared counter would cost more than the request it guards.
pub async fn throttle_locally(
    state: &IdentityState,
    ip: &ClientIp,
    endpoint: Endpoint,
    identifier: Option<&str>,
) -> AppResult<()> {
    count(state.local_limits(), state, ip, endpoint, identifier).await
}

async fn count(
    limiter: &dyn RateLimiter,
    state: &IdentityState,
    ip: &ClientIp,
    endpoint: Endpoint,
    identifier: Option<&str>,
) -> AppResult<()> {
    let policy = state.config().abuse;
    if policy.per_ip > 0 {
        let key = format!("ip:{}:{}", endpoint.as_str(), ip.0);
        limited(limiter.hit(&key, policy.per_ip, WINDOW).await?)?;
    }
    if let Some(identifier) = identifier.filter(|_| policy.per_identifier > 0) {
        let key = format!("id:{}:{}", endpoint.as_str(), identifier.to_lowercase());
        limited(limiter.hit(&key, policy.per_identifier, WINDOW).await?)?;
    }
    Ok(())
}

fn lock_key(identifier: &str) -> String {
    identifier.to_lowercase()
}

/// 429 while `identifier` is locked out, whether or not an account has it.
pub async fn ensure_unlocked(state: &IdentityState, identifier: &str) -> AppResult<()> {
    match state
        .stores()
        .lockouts()?
        .locked_for(&lock_key(identifier))
        .await?
    {
        Some(left) => Err(AppError::RateLimited {
            retry_after_secs: left.as_secs().max(1),
        }),
        None => Ok(()),
    }
}

/// Counts a failed sign-in; a lock it starts goes to the audit log.
pub async fn record_failure(state: &IdentityState, identifier: &str) -> AppResult<()> {
    let policy = state.config().abuse.lockout;
    if let Some(lock) = state
        .stores()
        .lockouts()?
        .record_failure(&lock_key(identifier), policy)
        .await?
    {
        let mut conn = state.db()?.acquire().await?;
        audit::record(
            &mut conn,
            Entry {
                action: Action::LockedOut,
                actor_id: None,
                subject_id: None,
                details: json!({ "identifier": identifier, "seconds": lock.as_secs() }),
            },
        )
        .await?;
    }
    Ok(())
}

pub async fn clear_failures(state: &IdentityState, identifier: &str) -> AppResult<()> {
    Ok(state
        .stores()
        .lockouts()?
        .clear(&lock_key(identifier))
        .await?)
}

/// Runs `work` and answers no sooner than `floor` after it began, so that the answer's timing
/// does not tell which way the work went (e.g. whether an account has an address). Work that
/// takes longer than the floor answers when it is done.
pub async fn no_sooner_than<F: Future>(floor: Duration, work: F) -> F::Output {
    let until = tokio::time::Instant::now() + floor;
    let output = work.await;
    tokio::time::sleep_until(until).await;
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Instant, sleep};

    #[tokio::test(start_paused = true)]
    async fn a_quick_answer_waits_for_the_floor() {
        let started = Instant::now();
        let answer = no_sooner_than(Duration::from_millis(100), async { 7 }).await;
        assert_eq!(answer, 7);
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn quick_and_slow_work_under_the_floor_answer_at_the_same_time() {
        let started = Instant::now();
        no_sooner_than(Duration::from_millis(100), sleep(Duration::from_millis(60))).await;
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn work_longer_than_the_floor_is_not_held_further() {
        let started = Instant::now();
        no_sooner_than(
            Duration::from_millis(100),
            sleep(Duration::from_millis(250)),
        )
        .await;
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }
}
