//! The relay's SQS sender (aws-sdk-sqs, behind the `sqs` feature). The client is configured from
//! the environment (`crate::aws`) without `aws-config`, over rustls with ring, and built without
//! I/O: the first send opens the connection.

use super::transport::{Outgoing, Sender};
use crate::config::Env;
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// SQS's longest `DelaySeconds`.
const MAX_DELAY: Duration = Duration::from_secs(900);

pub struct Sqs {
    client: aws_sdk_sqs::Client,
    /// A queue's URL is this followed by its name.
    prefix: String,
}

impl Sqs {
    pub fn from_env(env: &Env, prefix: String) -> Self {
        Self {
            client: crate::aws::sdk_client!(aws_sdk_sqs, env, "SQS"),
            prefix,
        }
    }
}

#[async_trait]
impl Sender for Sqs {
    fn horizon(&self) -> Duration {
        MAX_DELAY
    }

    /// One `SendMessageBatch` per queue; the entries SQS reports as successful are accepted.
    async fn send(&self, batch: &[Outgoing]) -> anyhow::Result<Vec<Uuid>> {
        let mut by_queue: BTreeMap<&str, Vec<&Outgoing>> = BTreeMap::new();
        for message in batch {
            by_queue.entry(&message.queue).or_default().push(message);
        }
        let mut accepted = Vec::with_capacity(batch.len());
        for (queue, messages) in by_queue {
            let mut entries = Vec::with_capacity(messages.len());
            for message in &messages {
                let delay = message.delay.min(MAX_DELAY).as_secs_f64().ceil();
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(message.id.simple().to_string())
                        .message_body(&message.body)
                        // At most 900, so the conversion is exact.
                        .delay_seconds(delay as i32)
                        .build()?,
                );
            }
            let sent = self
                .client
                .send_message_batch()
                .queue_url(format!("{}{queue}", self.prefix))
                .set_entries(Some(entries))
                .send()
                .await;
            let output = match sent {
                Ok(output) => output,
                Err(err) if accepted.is_empty() => return Err(err.into()),
                Err(err) => {
                    tracing::warn!(queue, error = %err, "SQS refused a batch");
                    continue;
                }
            };
            for entry in output.successful() {
                if let Ok(id) = Uuid::try_parse(entry.id()) {
                    accepted.push(id);
                }
            }
            for entry in output.failed() {
                tracing::warn!(queue, code = entry.code(), "SQS refused a message");
            }
        }
        Ok(accepted)
    }
}
