//! "Not yet" on a deployed transport. SQS and OpenFaaS can only redeliver a failed message,
//! which spends one of the queue's receives and, after `maxReceiveCount`, dead-letters it: a
//! payment waiting for its confirmations would be lost to the dead-letter queue. So, deployed,
//! [`Deferring`] turns [`JobError::Later`] into a new message: the job is written back to the
//! outbox with its delay ([`super::enqueue`]), and the relay sends it when it is due (under
//! Lambda with SQS `DelaySeconds`). The delivery itself succeeded. Locally the Postgres queue
//! does the same in place ([`super::PgQueue`] makes the row visible after the delay).

use super::{Job, JobError, JobHandler, enqueue_once};
use crate::db::Db;
use async_trait::async_trait;
use std::sync::Arc;

/// A handler whose "later" becomes a delayed message on `queue` (see the module's comment).
pub struct Deferring {
    inner: Arc<dyn JobHandler>,
    db: Db,
    queue: &'static str,
}

impl Deferring {
    pub fn new(inner: Arc<dyn JobHandler>, db: Db, queue: &'static str) -> Self {
        Self { inner, db, queue }
    }
}

#[async_trait]
impl JobHandler for Deferring {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        match self.inner.handle(job).await {
            Err(JobError::Later(after)) => {
                // Without the outbox, let the transport redeliver it (a retry).
                let pool = self
                    .db
                    .pool()
                    .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot defer: {e}")))?;
                let mut conn = pool.acquire().await?;
                // Once per body: a duplicate delivery joins the waiting message.
                let id = enqueue_once(&mut conn, self.queue, &job.body, after).await?;
                tracing::info!(queue = self.queue, job = %job.id, next = %id, after_secs = after.as_secs(), "deferred");
                Ok(())
            }
            other => other,
        }
    }
}
