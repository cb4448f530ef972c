//! The ephemeral store in one process's memory: for unit tests, and for limits that are meant
//! per instance (issuing a SIWE nonce costs no write, so its rate limit protects only this
//! instance's CPU). Windows and locks follow the wall clock, as the Postgres store's do.

use super::{
    Idempotency, IdempotencyStore, LockoutPolicy, Lockouts, RateDecision, RateLimiter, StoreResult,
    lock_left, millis_left, now_ms, whole_seconds_left,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Entries kept before stale ones are swept, so a flood of distinct keys cannot grow the map
/// without bound.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct MemoryEphemeral {
    windows: Mutex<HashMap<String, (u128, u32)>>,
    lockouts: Mutex<HashMap<String, (u32, Option<u128>)>>,
    idempotency: Mutex<HashMap<(String, String), IdempotencyRow>>,
}

struct IdempotencyRow {
    request_hash: Vec<u8>,
    outcome: Option<(u16, Value)>,
    expires_at: u128,
}

/// A poisoned lock only means another thread panicked mid-update of a counter; the map is
/// still usable, so carry on with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryEphemeral {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimiter for MemoryEphemeral {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> StoreResult<RateDecision> {
        let now = now_ms();
        let length = window.as_millis().max(1);
        let start = now - now % length;
        let mut windows = lock(&self.windows);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (s, _)| *s == start);
        }
        let entry = windows.entry(key.to_owned()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 <= limit {
            return Ok(RateDecision::Allowed);
        }
        Ok(RateDecision::Limited {
            retry_after: whole_seconds_left(millis_left(start + length, now)),
        })
    }
}

#[async_trait]
impl Lockouts for MemoryEphemeral {
    async fn locked_for(&self, identifier: &str) -> StoreResult<Option<Duration>> {
        let now = now_ms();
        Ok(lock_left(
            lock(&self.lockouts)
                .get(identifier)
                .and_then(|(_, until)| *until),
            now,
        ))
    }

    async fn record_failure(
        &self,
        identifier: &str,
        policy: LockoutPolicy,
    ) -> StoreResult<Option<Duration>> {
        let mut lockouts = lock(&self.lockouts);
        if lockouts.len() >= SWEEP_AT {
            let now = now_ms();
            lockouts.retain(|_, (_, until)| until.is_some_and(|u| u > now));
        }
        let entry = lockouts.entry(identifier.to_owned()).or_insert((0, None));
        entry.0 = entry.0.saturating_add(1);
        let lock_for = policy.lock_for(entry.0);
        if let Some(d) = lock_for {
            entry.1 = Some(now_ms() + d.as_millis());
        }
        Ok(lock_for)
    }

    async fn clear(&self, identifier: &str) -> StoreResult<()> {
        lock(&self.lockouts).remove(identifier);
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryEphemeral {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &[u8],
        ttl: Duration,
    ) -> StoreResult<Idempotency> {
        let now = now_ms();
        let mut rows = lock(&self.idempotency);
        rows.retain(|_, row| row.expires_at > now);
        let id = (scope.to_owned(), key.to_owned());
        let Some(row) = rows.get(&id) else {
            rows.insert(
                id,
                IdempotencyRow {
                    request_hash: request_hash.to_vec(),
                    outcome: None,
                    expires_at: now + ttl.as_millis(),
                },
            );
            return Ok(Idempotency::Started);
        };
        Ok(match (&row.outcome, row.request_hash == request_hash) {
            (_, false) => Idempotency::Mismatch,
            (Some((status, response)), true) => Idempotency::Completed {
                status: *status,
                response: response.clone(),
            },
            (None, true) => Idempotency::InProgress,
        })
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        response: &Value,
    ) -> StoreResult<()> {
        if let Some(row) = lock(&self.idempotency).get_mut(&(scope.to_owned(), key.to_owned())) {
            row.outcome = Some((status, response.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::*;

    #[tokio::test]
    async fn the_memory_store_meets_the_conformance_suite() -> crate::TestResult {
        conformance::the_whole_contract(&MemoryEphemeral::new()).await?;
        Ok(())
    }

    #[tokio::test]
    async fn entries_end_on_time() -> crate::TestResult {
        conformance::entries_end_on_time(&MemoryEphemeral::new()).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_flood_of_keys_is_swept() -> crate::TestResult {
        // A flood of keys in windows that then end: the next hit sweeps every one of them.
        let store = MemoryEphemeral::new();
        for i in 0..SWEEP_AT {
            store
                .hit(&format!("old{i}"), 5, Duration::from_millis(1))
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        store.hit("new", 5, Duration::from_millis(1)).await?;
        assert_eq!(
            lock(&store.windows).len(),
            1,
            "only the live window is left"
        );
        // Keys of the current window survive a sweep (their counts still matter).
        let store = MemoryEphemeral::new();
        for i in 0..=SWEEP_AT {
            store
                .hit(&format!("k{i}"), 5, Duration::from_secs(3600))
                .await?;
        }
        assert_eq!(lock(&store.windows).len(), SWEEP_AT + 1);
        Ok(())
    }
}
