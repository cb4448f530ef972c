//! Postgres implementation of every ephemeral-store trait.

use super::{
    Idempotency, IdempotencyStore, IssuedNonce, LockoutPolicy, Lockouts, NonceStore, RateDecision,
    RateLimiter,
};
use crate::error::AppResult;
use async_trait::async_trait;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Clone)]
pub struct PgEphemeral {
    pool: PgPool,
}

impl PgEphemeral {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Rounds a remaining duration up to whole seconds (Retry-After is in seconds, never 0).
fn remaining(until: OffsetDateTime, now: OffsetDateTime) -> Duration {
    let left = (until - now).whole_milliseconds().max(0);
    let secs = u64::try_from(left.div_euclid(1000) + i128::from(left % 1000 != 0)).unwrap_or(1);
    Duration::from_secs(secs.max(1))
}

#[async_trait]
impl NonceStore for PgEphemeral {
    async fn issue(&self, nonce: &IssuedNonce) -> AppResult<()> {
        let mut tx = self.pool.begin().await?;
        // Opportunistic clean-up keeps the table small without a scheduler.
        sqlx::query!(
            "DELETE FROM auth_nonces WHERE nonce IN
               (SELECT nonce FROM auth_nonces WHERE expires_at < now() LIMIT 100)"
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO auth_nonces (nonce, address, expires_at) VALUES ($1, $2, $3)",
            nonce.nonce,
            nonce.address,
            nonce.expires_at,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn consume(
        &self,
        conn: &mut PgConnection,
        nonce: &str,
    ) -> AppResult<Option<IssuedNonce>> {
        // DELETE … RETURNING takes the row lock: of concurrent spenders exactly one gets the row.
        let row = sqlx::query!(
            "DELETE FROM auth_nonces WHERE nonce = $1 AND expires_at > now()
             RETURNING nonce, address, expires_at",
            nonce
        )
        .fetch_optional(conn)
        .await?;
        Ok(row.map(|r| IssuedNonce {
            nonce: r.nonce,
            address: r.address,
            expires_at: r.expires_at,
        }))
    }
}

#[async_trait]
impl RateLimiter for PgEphemeral {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> AppResult<RateDecision> {
        let row = sqlx::query!(
            r#"WITH w AS (
                 SELECT to_timestamp(floor(extract(epoch FROM now()) / $2::float8) * $2::float8)
                        AS start
               )
               INSERT INTO rate_limits AS r (key, window_start, hits)
               SELECT $1, w.start, 1 FROM w
               ON CONFLICT (key) DO UPDATE SET
                 hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
                 window_start = EXCLUDED.window_start
               RETURNING hits AS "hits!", window_start AS "window_start!", now() AS "now!""#,
            key,
            seconds(window),
        )
        .fetch_one(&self.pool)
        .await?;
        if u32::try_from(row.hits).unwrap_or(u32::MAX) <= limit {
            return Ok(RateDecision::Allowed);
        }
        Ok(RateDecision::Limited {
            retry_after: remaining(row.window_start + window, row.now),
        })
    }
}

#[async_trait]
impl Lockouts for PgEphemeral {
    async fn locked_for(&self, identifier: &str) -> AppResult<Option<Duration>> {
        let row = sqlx::query!(
            r#"SELECT locked_until AS "locked_until!", now() AS "now!" FROM login_lockouts
               WHERE identifier = $1 AND locked_until > now()"#,
            identifier
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| remaining(r.locked_until, r.now)))
    }

    async fn record_failure(
        &self,
        identifier: &str,
        policy: LockoutPolicy,
    ) -> AppResult<Option<Duration>> {
        let mut tx = self.pool.begin().await?;
        let failures = sqlx::query_scalar!(
            "INSERT INTO login_lockouts AS l (identifier, failures) VALUES ($1, 1)
             ON CONFLICT (identifier) DO UPDATE SET failures = l.failures + 1, updated_at = now()
             RETURNING failures",
            identifier
        )
        .fetch_one(&mut *tx)
        .await?;
        let lock = policy.lock_for(u32::try_from(failures).unwrap_or(u32::MAX));
        if let Some(lock) = lock {
            sqlx::query!(
                "UPDATE login_lockouts SET locked_until = now() + make_interval(secs => $2)
                 WHERE identifier = $1",
                identifier,
                seconds(lock),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(lock)
    }

    async fn clear(&self, identifier: &str) -> AppResult<()> {
        sqlx::query!(
            "DELETE FROM login_lockouts WHERE identifier = $1",
            identifier
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for PgEphemeral {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &[u8],
        ttl: Duration,
    ) -> AppResult<Idempotency> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at <= now()",
            scope,
            key
        )
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (scope, key, request_hash, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (scope, key) DO NOTHING",
            scope,
            key,
            request_hash,
            seconds(ttl),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outcome = if inserted == 1 {
            Idempotency::Started
        } else {
            let row = sqlx::query!(
                "SELECT request_hash, status, response FROM idempotency_keys
                 WHERE scope = $1 AND key = $2",
                scope,
                key
            )
            .fetch_one(&mut *tx)
            .await?;
            match (row.request_hash == request_hash, row.status, row.response) {
                (false, _, _) => Idempotency::Mismatch,
                (true, Some(status), Some(response)) => Idempotency::Completed {
                    status: u16::try_from(status).unwrap_or(500),
                    response,
                },
                (true, _, _) => Idempotency::InProgress,
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        response: &Value,
    ) -> AppResult<()> {
        sqlx::query!(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2",
            scope,
            key,
            i16::try_from(status).unwrap_or(500),
            response,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
