//! The outbox relay. [`crate::queue::enqueue`] writes a job into `queue_messages` inside the change
//! that starts it, so the job exists if and only if the change commits. In the local gateway that
//! table *is* the queue. Deployed, it is the outbox: the relay, a scheduled queue worker, moves
//! its rows to the deployment's transport, and deletes each row only once the transport has
//! accepted it.
//! - Under Lambda: SQS (`SQS_QUEUE_URL_PREFIX` + the queue's name), a row due within 15 minutes
//!   sent with the rest of its delay as `DelaySeconds`; a row due later waits in the outbox.
//! - On OpenFaaS: an async invocation of the function named like the queue
//!   (`OPENFAAS_GATEWAY_URL/async-function/<queue>`), once the row is due.
//! - Locally (neither set): nothing to relay.
//!
//! A row is sent at least once: a send that succeeded before a failed commit sends it again, and
//! every handler is idempotent. Rows are leased with `FOR UPDATE SKIP LOCKED`, so two relays at
//! once never send a row twice.

use crate::config::Env;
use crate::db::Db;
use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Schedule, Trigger};
use crate::need::{AwsAccess, FaasValue, Need, SamValue, Var};
use crate::queue::signing;
use crate::queue::transport::{OpenFaas, Sender};
use crate::queue::{JobError, JobHandler, Outgoing};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// The outbox relay: every minute, moves the jobs that changes committed to `queue_messages`
/// onto the deployment's transport (SQS, OpenFaaS); locally, where that table is the queue, it
/// has nothing to do.
pub static OUTBOX_RELAY: FunctionSpec = FunctionSpec {
    name: QUEUE,
    trigger: Trigger::Queue {
        build: |platform| {
            Ok(Arc::new(Relay::from_env(
                platform.db.clone(),
                &platform.env,
            )?))
        },
        schedule: Some(Schedule {
            minutes: 1,
            body: RELAY,
            local_every: None,
            timeout_secs: None,
        }),
    },
    needs: &[&DATABASE, &NEED, &signing::NEED],
};

/// The relay's own queue (its schedule feeds it).
pub const QUEUE: &str = "outbox-relay";
/// The scheduled message.
pub const RELAY: &str = r#"{"task":"relay"}"#;

/// Rows leased and sent at once (SQS's batch limit).
const BATCH: i64 = 10;
/// Batches one run sends at most; the next run (a minute later) takes the rest.
const MAX_BATCHES: usize = 100;

/// Where the relay sends: declared as data, like every need (`gantry functions`).
pub const NEED: Need = Need {
    name: "outbox-relay",
    can_be_unavailable: false,
    vars: &[
        Var {
            name: "SQS_QUEUE_URL_PREFIX",
            sam: SamValue::Fixed {
                value: "!Sub \"https://sqs.${AWS::Region}.amazonaws.com/${AWS::AccountId}/${AWS::StackName}-\"",
            },
            openfaas: FaasValue::Unset,
        },
        Var {
            name: "OPENFAAS_GATEWAY_URL",
            sam: SamValue::Unset,
            openfaas: FaasValue::Value {
                value: "http://gateway.openfaas:8080",
            },
        },
    ],
    aws: &[AwsAccess::SendToEveryQueue],
};

/// The relay as a queue worker's handler.
pub struct Relay {
    db: Db,
    sender: Option<Arc<dyn Sender>>,
}

impl Relay {
    /// `sender: None` is the local gateway, where the outbox is the queue.
    pub fn new(db: Db, sender: Option<Arc<dyn Sender>>) -> Self {
        Self { db, sender }
    }

    /// The sender the environment names: SQS, OpenFaaS, or none.
    pub fn from_env(db: Db, env: &Env) -> Result<Self, crate::config::ConfigError> {
        let sender: Option<Arc<dyn Sender>> = if let Some(prefix) = env.get("SQS_QUEUE_URL_PREFIX")
        {
            Some(sqs_sender(env, prefix)?)
        } else {
            match env.get("OPENFAAS_GATEWAY_URL") {
                Some(url) => {
                    let key = crate::queue::signing::JobKey::from_env(env)?.ok_or_else(|| {
                        crate::config::ConfigError::invalid(
                            "JOB_SIGNING_KEY",
                            "must be set to send jobs to OpenFaaS (the workers refuse unsigned ones)",
                        )
                    })?;
                    Some(Arc::new(OpenFaas::new(&url, key)) as Arc<dyn Sender>)
                }
                None => None,
            }
        };
        Ok(Self::new(db, sender))
    }

    /// Relays every row due within the sender's horizon (up to [`MAX_BATCHES`] batches); how
    /// many were sent.
    pub async fn relay(&self) -> Result<usize, JobError> {
        let Some(sender) = &self.sender else {
            return Ok(0);
        };
        let pool = self
            .db
            .get()
            .ok_or_else(|| JobError::Retry(anyhow::anyhow!("DATABASE_URL is not configured")))?;
        let mut sent = 0;
        for _ in 0..MAX_BATCHES {
            let mut tx = pool.begin().await?;
            let batch: Vec<Outgoing> = sqlx::query!(
                r#"SELECT id, queue, body,
                       greatest(extract(epoch FROM visible_at - now()), 0)::float8 AS "delay!"
                   FROM queue_messages
                   WHERE dead_at IS NULL AND queue <> $1
                     AND visible_at <= now() + make_interval(secs => $2)
                   ORDER BY visible_at, id
                   LIMIT $3
                   FOR UPDATE SKIP LOCKED"#,
                QUEUE,
                sender.horizon().as_secs_f64(),
                BATCH,
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|row| Outgoing {
                id: row.id,
                queue: row.queue,
                body: row.body,
                delay: Duration::from_secs_f64(row.delay.max(0.0)),
            })
            .collect();
            if batch.is_empty() {
                break;
            }
            let accepted = sender.send(&batch).await.map_err(JobError::Retry)?;
            sqlx::query!(
                "DELETE FROM queue_messages WHERE id = ANY($1)",
                &accepted[..]
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            sent += accepted.len();
            if accepted.len() < batch.len() {
                // The transport refused some: they stay, and the next run tries them again.
                return Err(JobError::Retry(anyhow::anyhow!(
                    "the transport accepted {} of {} messages",
                    accepted.len(),
                    batch.len()
                )));
            }
        }
        Ok(sent)
    }
}

#[async_trait]
impl JobHandler for Relay {
    #[tracing::instrument(name = "outbox.relay", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &crate::queue::Job) -> Result<(), JobError> {
        let sent = self.relay().await?;
        tracing::info!(sent, "outbox relayed");
        Ok(())
    }
}

#[cfg(feature = "sqs")]
fn sqs_sender(env: &Env, prefix: String) -> Result<Arc<dyn Sender>, crate::config::ConfigError> {
    Ok(Arc::new(crate::queue::sqs::Sqs::from_env(env, prefix)))
}

/// Built without the `sqs` feature: only `functions/outbox-relay` has it.
#[cfg(not(feature = "sqs"))]
fn sqs_sender(_env: &Env, _prefix: String) -> Result<Arc<dyn Sender>, crate::config::ConfigError> {
    Err(crate::config::ConfigError::invalid(
        "SQS_QUEUE_URL_PREFIX",
        "this binary is built without SQS (the `sqs` feature of the gantry crate)",
    ))
}
