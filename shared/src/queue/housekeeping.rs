//! The built-in queue job: deletes what has expired. It names no table: each owner registers a
//! [`Purge`] (the ephemeral store its rate windows, lockouts and idempotency keys; the queue its
//! old dead letters; identity its spent SIWE nonces), and `crate::app` hands them over. It proves the queue runtime under every
//! trigger, and keeps the tables small. A schedule sends it `{"task":"purge-expired"}`: an
//! EventBridge Scheduler rule into SQS under Lambda, the cron connector on OpenFaaS, a timer in
//! the local gateway.

use crate::db::Db;
use crate::purge::{Purge, Purged};
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

pub struct Housekeeping {
    db: Db,
    purges: Vec<Purge>,
}

impl Housekeeping {
    /// Runs `purges` (each owner's, gathered by the composition root) on every pass.
    pub fn new(db: Db, purges: impl IntoIterator<Item = Purge>) -> Self {
        Self {
            db,
            purges: purges.into_iter().collect(),
        }
    }

    /// One pass: each purge in turn, each its own statement (a failure retries the whole job;
    /// purges are idempotent).
    pub async fn purge_expired(&self) -> Result<Purged, JobError> {
        let pool = self
            .db
            .get()
            .ok_or_else(|| JobError::Retry(anyhow::anyhow!("DATABASE_URL is not configured")))?;
        let mut purged = Purged::default();
        for purge in &self.purges {
            purged.0.push((purge.name, (purge.run)(pool).await?));
        }
        Ok(purged)
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
