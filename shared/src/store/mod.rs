//! The ephemeral store: SIWE nonces, rate-limit counters, lockouts and idempotency keys.
//!
//! Small traits, so each caller depends only on what it uses. Postgres implements them all
//! today (shared by every instance); a DynamoDB implementation arrives behind the same traits.
//! [`crate::state::AppState`] picks the implementation in one place.

mod postgres;

pub use postgres::PgEphemeral;

use crate::error::AppResult;
use async_trait::async_trait;
use serde_json::Value;
use sqlx::PgConnection;
use std::time::Duration;
use time::OffsetDateTime;

/// A nonce as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedNonce {
    pub nonce: String,
    /// When set, only this (EIP-55) address may use it.
    pub address: Option<String>,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait NonceStore: Send + Sync {
    async fn issue(&self, nonce: &IssuedNonce) -> AppResult<()>;

    /// Spends an unexpired nonce inside the caller's unit of work, so the nonce is used exactly
    /// when the session it authorises commits. `None`: unknown, expired or already spent.
    async fn consume(&self, conn: &mut PgConnection, nonce: &str)
    -> AppResult<Option<IssuedNonce>>;
}

/// The outcome of counting one request against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    Limited { retry_after: Duration },
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit for `key` in the current fixed window of length `window`.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> AppResult<RateDecision>;
}

/// How failures turn into a lock: `threshold` consecutive failures lock for `base`, each
/// further failure doubles it, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub base: Duration,
    pub max: Duration,
}

impl LockoutPolicy {
    /// The lock earned by `failures` consecutive failures, if any.
    pub fn lock_for(&self, failures: u32) -> Option<Duration> {
        if self.threshold == 0 || failures < self.threshold {
            return None;
        }
        let doublings = (failures - self.threshold).min(30);
        Some(self.base.saturating_mul(1 << doublings).min(self.max))
    }
}

#[async_trait]
pub trait Lockouts: Send + Sync {
    /// How long `identifier` is still locked, if it is.
    async fn locked_for(&self, identifier: &str) -> AppResult<Option<Duration>>;
    /// Records a failure; returns the lock it started, if any.
    async fn record_failure(
        &self,
        identifier: &str,
        policy: LockoutPolicy,
    ) -> AppResult<Option<Duration>>;
    async fn clear(&self, identifier: &str) -> AppResult<()>;
}

/// Where an idempotent request stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Idempotency {
    /// First sight of the key: do the work, then [`IdempotencyStore::complete`].
    Started,
    /// The same request is still being worked on elsewhere.
    InProgress,
    /// Done before: answer with the stored response.
    Completed { status: u16, response: Value },
    /// The key was used for a different request.
    Mismatch,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &[u8],
        ttl: Duration,
    ) -> AppResult<Idempotency>;
    async fn complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        response: &Value,
    ) -> AppResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_backs_off_exponentially_up_to_the_cap() {
        let policy = LockoutPolicy {
            threshold: 3,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        assert_eq!(policy.lock_for(2), None);
        assert_eq!(policy.lock_for(3), Some(Duration::from_secs(10)));
        assert_eq!(policy.lock_for(4), Some(Duration::from_secs(20)));
        assert_eq!(policy.lock_for(5), Some(Duration::from_secs(40)));
        assert_eq!(policy.lock_for(6), Some(Duration::from_secs(60)));
        assert_eq!(policy.lock_for(500), Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_zero_threshold_disables_lockout() {
        let policy = LockoutPolicy {
            threshold: 0,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        assert_eq!(policy.lock_for(100), None);
    }
}
