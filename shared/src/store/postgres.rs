//! Postgres implementation of every ephemeral-store trait.

use super::{
    Idempotency, IdempotencyStore, LockoutPolicy, Lockouts, RateDecision, RateLimiter, StoreError,
    StoreResult, stored, whole_seconds_left,
};
use crate::db::Db;
use async_trait::async_trait;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Clone)]
pub struct PgEphemeral {
    db: Db,
}

impl PgEphemeral {
    pub fn new(pool: PgPool) -> Self {
        Self::on(Db::new(Some(pool)))
    }

    /// On a database whose pool is built on first use.
    pub fn on(db: Db) -> Self {
        Self { db }
    }

    fn pool(&self) -> StoreResult<&PgPool> {
        self.db.get().ok_or(StoreError::Unconfigured)
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn remaining(until: OffsetDateTime, now: OffsetDateTime) -> Duration {
    whole_seconds_left((until - now).whole_milliseconds())
}

#[async_trait]
impl RateLimiter for PgEphemeral {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> StoreResult<RateDecision> {
        let key = stored(key);
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
            key.as_ref(),
            seconds(window),
        )
        .fetch_one(self.pool()?)
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
    async fn locked_for(&self, identifier: &str) -> StoreResult<Option<Duration>> {
        let identifier = stored(identifier);
        let row = sqlx::query!(
            r#"SELECT locked_until AS "locked_until!", now() AS "now!" FROM login_lockouts
               WHERE identifier = $1 AND locked_until > now()"#,
            identifier.as_ref()
        )
        .fetch_optional(self.pool()?)
        .await?;
        Ok(row.map(|r| remaining(r.locked_until, r.now)))
    }

    async fn record_failure(
        &self,
        identifier: &str,
        policy: LockoutPolicy,
    ) -> StoreResult<Option<Duration>> {
        let identifier = stored(identifier);
        let mut tx = self.pool()?.begin().await?;
        let failures = sqlx::query_scalar!(
            "INSERT INTO login_lockouts AS l (identifier, failures) VALUES ($1, 1)
             ON CONFLICT (identifier) DO UPDATE SET failures = l.failures + 1, updated_at = now()
             RETURNING failures",
            identifier.as_ref()
        )
        .fetch_one(&mut *tx)
        .await?;
        let lock = policy.lock_for(u32::try_from(failures).unwrap_or(u32::MAX));
        if let Some(lock) = lock {
            sqlx::query!(
                "UPDATE login_lockouts SET locked_until = now() + make_interval(secs => $2)
                 WHERE identifier = $1",
                identifier.as_ref(),
                seconds(lock),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(lock)
    }

    async fn clear(&self, identifier: &str) -> StoreResult<()> {
        let identifier = stored(identifier);
        sqlx::query!(
            "DELETE FROM login_lockouts WHERE identifier = $1",
            identifier.as_ref()
        )
        .execute(self.pool()?)
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
    ) -> StoreResult<Idempotency> {
        let key = stored(key);
        let mut tx = self.pool()?.begin().await?;
        sqlx::query!(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at <= now()",
            scope,
            key.as_ref()
        )
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (scope, key, request_hash, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (scope, key) DO NOTHING",
            scope,
            key.as_ref(),
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
                key.as_ref()
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
    ) -> StoreResult<()> {
        let key = stored(key);
        sqlx::query!(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2",
            scope,
            key.as_ref(),
            i16::try_from(status).unwrap_or(500),
            response,
        )
        .execute(self.pool()?)
        .await?;
        Ok(())
    }
}

/// What expires in this store's tables, for the housekeeping job. Rate windows are at most an
/// hour long, so an older row counts nothing any more. A day without failures forgets an
/// identifier's streak, unless it is locked.
pub const PURGES: &[crate::purge::Purge] = &[
    crate::purge::Purge {
        name: "rate_windows",
        run: |pool| {
            Box::pin(async move {
                sqlx::query!(
                    "DELETE FROM rate_limits WHERE window_start < now() - interval '1 hour'"
                )
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })
        },
    },
    crate::purge::Purge {
        name: "lockouts",
        run: |pool| {
            Box::pin(async move {
                sqlx::query!(
                    "DELETE FROM login_lockouts WHERE updated_at < now() - interval '1 day'
                       AND (locked_until IS NULL OR locked_until < now())"
                )
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })
        },
    },
    crate::purge::Purge {
        name: "idempotency_keys",
        run: |pool| {
            Box::pin(async move {
                sqlx::query!("DELETE FROM idempotency_keys WHERE expires_at < now()")
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            })
        },
    },
];
