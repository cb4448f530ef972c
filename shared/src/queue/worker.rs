//! The local gateway's in-process consumer: leases messages from [`PgQueue`], hands each to the
//! queue's [`JobHandler`], and settles it as the outcome says.

use super::{Job, JobError, JobHandler, PgQueue, Received};
use std::sync::Arc;
use std::time::Duration;

/// How a worker leases and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerPolicy {
    /// Messages leased at once (SQS's batch size).
    pub batch: u32,
    /// How long a leased message stays invisible to other workers.
    pub visibility: Duration,
    /// The delay before the first retry; it doubles with each attempt, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long an idle worker sleeps before polling again.
    pub idle_poll: Duration,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        Self {
            batch: 10,
            visibility: Duration::from_secs(60),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            idle_poll: Duration::from_secs(1),
        }
    }
}

impl WorkerPolicy {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.backoff_base
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

/// What became of the messages one poll handled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub done: usize,
    pub retried: usize,
    pub dead: usize,
    /// Not done yet: put back for later, without spending an attempt.
    pub later: usize,
}

impl Settled {
    pub fn total(&self) -> usize {
        self.done + self.retried + self.dead + self.later
    }
}

pub struct Worker {
    queue: PgQueue,
    name: String,
    handler: Arc<dyn JobHandler>,
    policy: WorkerPolicy,
}

impl Worker {
    pub fn new(
        queue: PgQueue,
        name: &str,
        handler: Arc<dyn JobHandler>,
        policy: WorkerPolicy,
    ) -> Self {
        Self {
            queue,
            name: name.to_owned(),
            handler,
            policy,
        }
    }

    /// Leases one batch and handles it.
    pub async fn poll(&self) -> Result<Settled, sqlx::Error> {
        let batch = self
            .queue
            .receive(&self.name, self.policy.batch, self.policy.visibility)
            .await?;
        let mut settled = Settled::default();
        for message in batch {
            self.settle(message, &mut settled).await?;
        }
        Ok(settled)
    }

    #[tracing::instrument(name = "queue.job", skip_all, fields(queue = %self.name, id = %message.id, attempt = message.attempts))]
    async fn settle(&self, message: Received, settled: &mut Settled) -> Result<(), sqlx::Error> {
        let job = Job {
            id: message.id.to_string(),
            body: message.body,
            attempt: message.attempts,
        };
        match self.handler.handle(&job).await {
            Ok(()) => {
                self.queue.ack(message.id).await?;
                settled.done += 1;
            }
            Err(JobError::Retry(err)) => {
                let error = format!("{:#}", crate::redact::Redacted(&err));
                self.queue
                    .retry(message.id, self.policy.backoff(message.attempts), &error)
                    .await?;
                if message.attempts >= message.max_attempts {
                    tracing::error!(error, "job failed on its last attempt: dead-lettered");
                    settled.dead += 1;
                } else {
                    tracing::warn!(error, "job failed; it will be retried");
                    settled.retried += 1;
                }
            }
            Err(JobError::Later(after)) => {
                tracing::info!(after_secs = after.as_secs(), "job not done yet: back later");
                self.queue.later(message.id, after).await?;
                settled.later += 1;
            }
            Err(JobError::Drop(reason)) => {
                tracing::error!(reason, "job cannot succeed: dead-lettered");
                self.queue.dead_letter(message.id, &reason).await?;
                settled.dead += 1;
            }
        }
        Ok(())
    }

    /// Polls until the process ends. A failed poll (the database is down) waits and tries again.
    pub async fn run(self) {
        tracing::info!(queue = %self.name, "queue worker started");
        loop {
            match self.poll().await {
                Ok(settled) if settled.total() > 0 => continue,
                Ok(_) => {}
                Err(err) => tracing::error!(queue = %self.name, error = %err, "queue poll failed"),
            }
            tokio::time::sleep(self.policy.idle_poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = WorkerPolicy {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10),
            ..WorkerPolicy::default()
        };
        let delays: Vec<u64> = (1..=5).map(|a| policy.backoff(a).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 10, 10]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(10));
    }
}
