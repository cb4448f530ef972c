//! The Postgres queue behind the local gateway's workers: SQS semantics on one table.

use super::{Queue, QueueError};
use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// Receives before a message is dead-lettered, unless the sender says otherwise (SQS's
/// `maxReceiveCount` in `template.yaml` matches it).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

#[derive(Clone)]
pub struct PgQueue {
    pool: PgPool,
}

/// A leased message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: Uuid,
    pub body: String,
    /// Receives so far, this one included.
    pub attempts: u32,
    pub max_attempts: u32,
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl PgQueue {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Queues `body` with its own attempt budget.
    pub async fn send_with(
        &self,
        queue: &str,
        body: &str,
        max_attempts: u32,
    ) -> Result<Uuid, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        insert(&mut conn, queue, body, max_attempts, Duration::ZERO).await
    }

    /// Leases up to `max` visible messages for `visibility`. Rows another worker holds are
    /// skipped, not waited for. A message whose last attempt's lease ran out (its worker died)
    /// is dead-lettered instead of being delivered again.
    pub async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<Received>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE queue_messages SET dead_at = now(),
                 last_error = coalesce(last_error, 'the last attempt timed out')
             WHERE queue = $1 AND dead_at IS NULL AND visible_at <= now()
               AND attempts >= max_attempts",
            queue
        )
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query!(
            "UPDATE queue_messages m SET attempts = m.attempts + 1,
                 visible_at = now() + make_interval(secs => $3)
             WHERE m.id IN (
                 SELECT id FROM queue_messages
                 WHERE queue = $1 AND dead_at IS NULL AND visible_at <= now()
                 ORDER BY visible_at, id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             RETURNING m.id, m.body, m.attempts, m.max_attempts",
            queue,
            i64::from(max),
            visibility.as_secs_f64(),
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut received: Vec<Received> = rows
            .into_iter()
            .map(|r| Received {
                id: r.id,
                body: r.body,
                attempts: count(r.attempts),
                max_attempts: count(r.max_attempts),
            })
            .collect();
        received.sort_by_key(|r| r.id);
        Ok(received)
    }

    /// Done: the message is deleted.
    pub async fn ack(&self, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query!("DELETE FROM queue_messages WHERE id = $1", id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Failed for now: visible again after `delay`, or dead-lettered when this was the last
    /// attempt.
    pub async fn retry(&self, id: Uuid, delay: Duration, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE queue_messages SET last_error = $3,
                 visible_at = now() + make_interval(secs => $2),
                 dead_at = CASE WHEN attempts >= max_attempts THEN now() END
             WHERE id = $1",
            id,
            delay.as_secs_f64(),
            error,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Not yet: visible again after `delay`, and this receive does not count as an attempt.
    pub async fn later(&self, id: Uuid, delay: Duration) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE queue_messages SET attempts = greatest(attempts - 1, 0),
                 visible_at = now() + make_interval(secs => $2)
             WHERE id = $1",
            id,
            delay.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Failed for good: dead-lettered now.
    pub async fn dead_letter(&self, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE queue_messages SET dead_at = now(), last_error = $2 WHERE id = $1",
            id,
            error
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Queues `body` on `queue`, visible after `delay`, as part of the transaction `conn` is in: the
/// job exists if and only if that transaction commits, so a change and the work it starts are
/// never half-written (the transactional outbox, with the local queue's table as the outbox).
pub async fn enqueue(
    conn: &mut PgConnection,
    queue: &str,
    body: &str,
    delay: Duration,
) -> Result<Uuid, sqlx::Error> {
    insert(conn, queue, body, DEFAULT_MAX_ATTEMPTS, delay).await
}

async fn insert(
    conn: &mut PgConnection,
    queue: &str,
    body: &str,
    max_attempts: u32,
    delay: Duration,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO queue_messages (id, queue, body, max_attempts, visible_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        id,
        queue,
        body,
        i32::try_from(max_attempts).unwrap_or(i32::MAX),
        delay.as_secs_f64(),
    )
    .execute(conn)
    .await?;
    Ok(id)
}

#[async_trait]
impl Queue for PgQueue {
    async fn send(&self, queue: &str, body: &str) -> Result<String, QueueError> {
        Ok(self
            .send_with(queue, body, DEFAULT_MAX_ATTEMPTS)
            .await?
            .to_string())
    }
}

/// SQS keeps a dead-letter queue's messages at most 14 days; so does the local queue (the
/// housekeeping job runs this).
pub const PURGES: &[crate::purge::Purge] = &[
    crate::purge::Purge {
        name: "dead_letters",
        run: |pool| {
            Box::pin(async move {
                sqlx::query!(
                    "DELETE FROM queue_messages WHERE dead_at < now() - interval '14 days'"
                )
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })
        },
    },
    // Signed deliveries' ids (super::signing): their signatures went stale long before.
    crate::purge::Purge {
        name: "job_receipts",
        run: |pool| {
            Box::pin(async move {
                sqlx::query!(
                    "DELETE FROM job_receipts WHERE received_at < now() - interval '2 days'"
                )
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })
        },
    },
];

/// Like [`enqueue`], but not when a message of `queue` with the same body is already waiting:
/// a job delivered twice, each delivery deferring it again, would otherwise become two chains
/// that poll forever. Returns the waiting message's id in that case. Two at once take turns on
/// a lock of that body, so the second finds the first's message.
pub async fn enqueue_once(
    conn: &mut PgConnection,
    queue: &str,
    body: &str,
    delay: Duration,
) -> Result<Uuid, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))",
        queue,
        body
    )
    .execute(&mut *tx)
    .await?;
    let waiting = sqlx::query_scalar!(
        "SELECT id FROM queue_messages WHERE queue = $1 AND body = $2 AND dead_at IS NULL LIMIT 1",
        queue,
        body,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let id = match waiting {
        Some(id) => id,
        None => enqueue(&mut tx, queue, body, delay).await?,
    };
    tx.commit().await?;
    Ok(id)
}
