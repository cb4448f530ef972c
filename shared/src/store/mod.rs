//! The ephemeral store: rate-limit windows, lockouts and idempotency keys. Nothing here has to
//! commit together with a Postgres transaction (what does, such as spending a SIWE nonce, is
//! written in that transaction by its owner), so the traits take no connection.
//!
//! Small traits, so each caller depends only on what it uses. Three implementations:
//! [`PgEphemeral`] (shared by every instance; the default), `DynamoEphemeral` (the `dynamodb`
//! feature, chosen by `EPHEMERAL_STORE_TABLE`) and [`MemoryEphemeral`] (one process: unit tests,
//! and per-instance limits). All three pass [`conformance`]. The implementation is chosen in one
//! place, `crate::platform::Stores::choose`.

pub mod conformance;
#[cfg(feature = "dynamodb")]
mod dynamo;
mod memory;
mod postgres;

#[cfg(feature = "dynamodb")]
pub use dynamo::{DynamoEphemeral, PARTITION_KEY, TTL_ATTRIBUTE};
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
    #[error("ephemeral store (dynamodb): {0}")]
    Dynamo(String),
    #[error("ephemeral store: too many concurrent writers to one key")]
    Contended,
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Postgres(err) => err.into(),
            unavailable @ (StoreError::Unconfigured | StoreError::Contended) => {
                AppError::Unavailable(unavailable.to_string())
            }
            StoreError::Dynamo(err) => {
                tracing::warn!(error = %err, "the ephemeral store (DynamoDB) did not answer");
                AppError::Unavailable("the ephemeral store is unavailable".into())
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

/// Longest key stored as given; longer ones are stored as their SHA-256.
const MAX_STORED_KEY: usize = 256;

/// The form a key is stored in. The traits take any string, but Postgres `text` cannot hold NUL,
/// a B-tree index entry and a DynamoDB partition key are limited in size, and callers key limits
/// by what a client sent, before validating it: a key with NUL or over 256 bytes is stored as
/// `sha256:<hex>`.
fn stored(key: &str) -> std::borrow::Cow<'_, str> {
    use sha2::Digest;
    if key.len() <= MAX_STORED_KEY && !key.contains('\0') {
        return std::borrow::Cow::Borrowed(key);
    }
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::borrow::Cow::Owned(format!("sha256:{hex}"))
}

/// Milliseconds since the epoch, by this machine's clock (the memory and DynamoDB stores).
fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn millis_left(until: u128, now: u128) -> i128 {
    i128::try_from(until).unwrap_or(i128::MAX) - i128::try_from(now).unwrap_or(i128::MAX)
}

/// What is left of a lock held until `until` (epoch milliseconds), if anything.
fn lock_left(until: Option<u128>, now: u128) -> Option<Duration> {
    until
        .filter(|until| *until > now)
        .map(|until| whole_seconds_left(millis_left(until, now)))
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
