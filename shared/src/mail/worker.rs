//! The `mailer` worker: delivers one outbox row per job, at most once per row. The row is locked
//! (`FOR UPDATE SKIP LOCKED`) while it is sent and marked sent in the same transaction, so a
//! redelivered job finds it sent (or being sent) and does nothing. Only a crash between the
//! server's acceptance and the commit can send a row twice; its `Message-ID` is the row's id, so
//! the receiving side can tell.

use super::transport::{MailTransport, OutboxAttachment, OutboxMail};
use crate::db::Db;
use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Trigger};
use crate::queue::{Job, JobError, JobHandler, signing};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Delivers the mail outbox (one job per mail).
pub static MAILER: FunctionSpec = FunctionSpec {
    name: super::QUEUE,
    trigger: Trigger::Queue {
        build: |platform| {
            let transport = super::transport_from_env(&platform.env)?;
            Ok(Arc::new(Mailer::new(platform.db.clone(), transport)))
        },
        schedule: None,
    },
    needs: &[&DATABASE, &super::NEED, &signing::NEED],
};

/// The body of a `mailer` job.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Delivery {
    pub(super) mail_id: Uuid,
}

/// How long a job waits while no transport is configured.
const NO_TRANSPORT_WAIT: Duration = Duration::from_secs(300);

pub struct Mailer {
    db: Db,
    transport: Option<Arc<dyn MailTransport>>,
}

impl Mailer {
    pub fn new(db: Db, transport: Option<Arc<dyn MailTransport>>) -> Self {
        Self { db, transport }
    }
}

#[async_trait]
impl JobHandler for Mailer {
    #[tracing::instrument(name = "mailer", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let Delivery { mail_id } = serde_json::from_str(&job.body)
            .map_err(|e| JobError::drop(format!("not a mail delivery: {e}")))?;
        let Some(transport) = &self.transport else {
            tracing::warn!("no mail transport is configured (MAIL_SMTP_URL): the mail waits");
            return Err(JobError::Later(NO_TRANSPORT_WAIT));
        };
        let pool = self.db.pool().map_err(|e| JobError::Retry(e.into()))?;
        let mut tx = pool.begin().await?;
        let Some(row) = sqlx::query!(
            "SELECT recipient, subject, text_body, html_body, attachment_name, attachment_type,
                    attachment FROM mail_outbox
             WHERE id = $1 AND sent_at IS NULL AND failed_at IS NULL
             FOR UPDATE SKIP LOCKED",
            mail_id
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            // Sent, refused, being sent by another delivery of this job, or purged.
            return Ok(());
        };
        let mail = OutboxMail {
            id: mail_id,
            to: row.recipient,
            subject: row.subject,
            text: row.text_body,
            html: row.html_body,
            attachment: match (row.attachment_name, row.attachment_type, row.attachment) {
                (Some(filename), Some(content_type), Some(bytes)) => Some(OutboxAttachment {
                    filename,
                    content_type,
                    bytes,
                }),
                _ => None,
            },
        };
        match transport.deliver(&mail).await.map_err(JobError::Retry)? {
            Ok(()) => {
                sqlx::query!(
                    "UPDATE mail_outbox SET sent_at = now() WHERE id = $1",
                    mail_id
                )
                .execute(&mut *tx)
                .await?;
            }
            Err(refusal) => {
                tracing::warn!(mail = %mail_id, %refusal, "mail refused for good");
                sqlx::query!(
                    "UPDATE mail_outbox SET failed_at = now(), failure = $2 WHERE id = $1",
                    mail_id,
                    refusal.0,
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
