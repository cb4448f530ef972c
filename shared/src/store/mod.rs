//! The ephemeral store: rate-limit windows, lockouts and idempotency keys. Nothing here has to
//! commit together with a Postgres transaction (what does, such as spending a SIWE nonce, is
//! written in that transaction by its owner), so the traits take no connection.
//!
//! Small traits, so each caller depends only on what it uses. Two implementations today:
//! [`PgEphemeral`] (shared by every instance) and [`MemoryEphemeral`] (one process: unit tests,
//! and per-instance limits). A DynamoDB implementation arrives behind the same traits. The
//! implementation is chosen in one place, `crate::platform::Platform::load`.

pub mod conformance;
pub mod housekeeping;
mod memory;
mod postgres;

pub use memory::MemoryEphemeral;
pub use postgres::{PURGES, PgEphemeral};

use crate::error::AppError;
use async_trait::async_trait;
use serde_json::Value;
use std::time::Duration;

/// The ephemeral store could not answer. Transient: a worker retries, an HTTP caller gets 503
/// (or 500 for a bug).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ephemeral store (postgres): {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("the ephemeral store's database is misconfigured (DATABASE_URL)")]
    Unconfigured,
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Postgres(err) => err.into(),
            unconfigured @ StoreError::Unconfigured => {
                AppError::Unavailable(unconfigured.to_string())
            }
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The outcome of counting one request against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    Limited { retry_after: Duration },
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit for `key` in the current fixed window of length `window`.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> StoreResult<RateDecision>;
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
    async fn locked_for(&self, identifier: &str) -> StoreResult<Option<Duration>>;
    /// Records a failure; returns the lock it started, if any.
    async fn record_failure(
        &self,
        identifier: &str,
        policy: LockoutPolicy,
    ) -> StoreResult<Option<Duration>>;
    async fn clear(&self, identifier: &str) -> StoreResult<()>;
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
    ) -> StoreResult<Idempotency>;
    async fn complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        response: &Value,
    ) -> StoreResult<()>;
}

/// Rounds a remaining duration up to whole seconds (Retry-After is in seconds, never 0).
fn whole_seconds_left(millis_left: i128) -> Duration {
    let left = millis_left.max(0);
    let secs = u64::try_from(left.div_euclid(1000) + i128::from(left % 1000 != 0)).unwrap_or(1);
    Duration::from_secs(secs.max(1))
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

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(whole_seconds_left(0), Duration::from_secs(1));
        assert_eq!(whole_seconds_left(1001), Duration::from_secs(2));
        assert_eq!(whole_seconds_left(3000), Duration::from_secs(3));
        assert_eq!(whole_seconds_left(-5), Duration::from_secs(1));
    }
}
