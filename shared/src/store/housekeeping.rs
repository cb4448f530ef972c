//! The built-in queue job: deletes what has expired (spent SIWE nonces, rate-limit windows,
//! idle lockouts, idempotency keys, old dead letters). It proves the queue runtime under every
//! trigger, and keeps the tables small. A schedule sends it `{"task":"purge-expired"}`: an
//! EventBridge Scheduler rule into SQS under Lambda, the cron connector on OpenFaaS, a timer in
//! the local gateway.

use crate::platform::Db;
use crate::queue::{Job, JobError, JobHandler};
use async_trait::async_trait;
use serde::Deserialize;

/// The queue (and function) name.
pub const QUEUE: &str = "housekeeping";
/// The message a schedule sends.
pub const PURGE_EXPIRED: &str = r#"{"task":"purge-expired"}"#;

#[derive(Debug, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case", deny_unknown_fields)]
enum Task {
    PurgeExpired,
}

/// Rows deleted by one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub spent_nonces: u64,
    pub rate_windows: u64,
    pub lockouts: u64,
    pub idempotency_keys: u64,
    pub dead_letters: u64,
}

pub struct Housekeeping {
    db: Db,
}

impl Housekeeping {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// One pass over every table, in one statement (so one round trip and one transaction).
    pub async fn purge_expired(&self) -> Result<Purged, JobError> {
        let pool = self
            .db
            .get()
            .ok_or_else(|| JobError::Retry(anyhow::anyhow!("DATABASE_URL is not configured")))?;
        // Rate windows are at most an hour long, so an older row counts nothing any more. A day
        // without failures forgets an identifier's streak, unless it is locked. SQS keeps a
        // dead-letter queue's messages at most 14 days; so does the local queue.
        let row = sqlx::query!(
            r#"WITH
                 nonces AS (DELETE FROM spent_nonces WHERE expires_at < now() RETURNING 1),
                 windows AS (DELETE FROM rate_limits
                             WHERE window_start < now() - interval '1 hour' RETURNING 1),
                 lockouts AS (DELETE FROM login_lockouts
                              WHERE updated_at < now() - interval '1 day'
                                AND (locked_until IS NULL OR locked_until < now()) RETURNING 1),
                 keys AS (DELETE FROM idempotency_keys WHERE expires_at < now() RETURNING 1),
                 dead AS (DELETE FROM queue_messages
                          WHERE dead_at < now() - interval '14 days' RETURNING 1)
               SELECT (SELECT count(*) FROM nonces) AS "spent_nonces!",
                      (SELECT count(*) FROM windows) AS "rate_windows!",
                      (SELECT count(*) FROM lockouts) AS "lockouts!",
                      (SELECT count(*) FROM keys) AS "idempotency_keys!",
                      (SELECT count(*) FROM dead) AS "dead_letters!""#
        )
        .fetch_one(pool)
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Purged {
            spent_nonces: count(row.spent_nonces),
            rate_windows: count(row.rate_windows),
            lockouts: count(row.lockouts),
            idempotency_keys: count(row.idempotency_keys),
            dead_letters: count(row.dead_letters),
        })
    }
}

#[async_trait]
impl JobHandler for Housekeeping {
    #[tracing::instrument(name = "housekeeping", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let Task::PurgeExpired = serde_json::from_str(&job.body)
            .map_err(|e| JobError::drop(format!("not a housekeeping task: {e}")))?;
        let purged = self.purge_expired().await?;
        tracing::info!(?purged, "expired rows purged");
        Ok(())
    }
}
