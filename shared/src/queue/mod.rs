//! Queue-triggered work. A worker function handles one queue's messages with a [`JobHandler`];
//! `crate::runtime` delivers them from whichever trigger the deployment uses:
//! - under Lambda, an SQS event, answered with partial batch failures (`ReportBatchItemFailures`);
//! - over plain HTTP (OpenFaaS async invocations), one message per `POST /`;
//! - in the local gateway, an in-process [`Worker`] that consumes the Postgres queue
//!   ([`PgQueue`]: `FOR UPDATE SKIP LOCKED`, a visibility timeout, retries with back-off, and a
//!   dead-letter state), as SQS with a redrive policy would.
//!
//! Producers depend only on the small [`Queue`] trait. A job that a
//! database change starts is sent with [`enqueue`], inside that change's transaction: it
//! exists if and only if the change commits.

mod defer;
pub mod housekeeping;
mod postgres;
pub mod signing;
#[cfg(feature = "sqs")]
pub(crate) mod sqs;
pub mod transport;
mod worker;

pub use defer::Deferring;
pub use postgres::{PURGES, PgQueue, Received, enqueue, enqueue_once};
pub use transport::{Outgoing, Sender};
pub use worker::{Worker, WorkerPolicy};

use crate::error::AppError;
use async_trait::async_trait;

/// One message as a handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The transport's message id (SQS `messageId`, the local queue's row id, OpenFaaS's call id).
    pub id: String,
    pub body: String,
    /// 1 on first delivery.
    pub attempt: u32,
}

/// How a job failed, which is all a trigger needs to know: try again, or give up on it.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Transient (a dependency was down): deliver it again later, with back-off; after the last
    /// attempt it is dead-lettered.
    #[error("retry: {0:#}")]
    Retry(anyhow::Error),
    /// Permanent (the message can never succeed, e.g. it is malformed): dead-letter it now.
    #[error("drop: {0}")]
    Drop(String),
    /// Not a failure: not yet (a transaction waiting for confirmations). Deliver it again after
    /// this delay, spending no attempt, so a long wait is never dead-lettered: the local queue
    /// makes the row visible again later; deployed (SQS, OpenFaaS), [`Deferring`] sends it
    /// again as a new, delayed message through the outbox.
    #[error("later: in {0:?}")]
    Later(std::time::Duration),
}

impl JobError {
    pub fn drop(reason: impl Into<String>) -> Self {
        Self::Drop(reason.into())
    }
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        Self::Retry(err.into())
    }
}

impl From<crate::store::StoreError> for JobError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Retry(err.into())
    }
}

impl From<crate::chain::ChainError> for JobError {
    fn from(err: crate::chain::ChainError) -> Self {
        Self::Retry(err.into())
    }
}

/// How an HTTP-triggered job's failure reaches the caller (OpenFaaS's queue worker): a retry is
/// a 503, a dropped job a 422.
impl From<JobError> for AppError {
    fn from(err: JobError) -> Self {
        match err {
            JobError::Retry(err) => {
                tracing::warn!(error = %format!("{:#}", crate::redact::Redacted(&err)), "job failed; it may be retried");
                AppError::Unavailable("the job failed for now; retry it later".into())
            }
            JobError::Drop(reason) => AppError::Unprocessable(reason),
            JobError::Later(after) => AppError::Unavailable(format!(
                "the job is not done yet; deliver it again in {} s",
                after.as_secs()
            )),
        }
    }
}

/// Handles one queue's messages. Must be idempotent: every trigger delivers at least once.
#[async_trait]
pub trait JobHandler: Send + Sync {
    async fn handle(&self, job: &Job) -> Result<(), JobError>;
}

/// Sends messages. What producers depend on.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Queues `body` on `queue`; returns the message id.
    async fn send(&self, queue: &str, body: &str) -> Result<String, QueueError>;
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue (postgres): {0}")]
    Postgres(#[from] sqlx::Error),
}

impl From<QueueError> for AppError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Postgres(err) => err.into(),
        }
    }
}
