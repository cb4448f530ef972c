//! Where the outbox relay sends: the [`Sender`] seam and the OpenFaaS sender (the SQS sender,
//! behind the `sqs` feature, is in `super::sqs`).

use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

/// One row leaving the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: Uuid,
    pub queue: String,
    pub body: String,
    /// How long until it is due (zero: now).
    pub delay: Duration,
}

/// A transport the outbox is relayed to.
#[async_trait]
pub trait Sender: Send + Sync {
    /// How far ahead of its due time a row may be sent (the transport delays the rest); zero
    /// for a transport without delays.
    fn horizon(&self) -> Duration;

    /// Sends `batch`; the ids the transport accepted. An error means none was.
    async fn send(&self, batch: &[Outgoing]) -> anyhow::Result<Vec<Uuid>>;
}

/// OpenFaaS: one async invocation per row, once it is due (the gateway takes no delay), signed
/// for the worker ([`super::signing`]).
pub struct OpenFaas {
    gateway: String,
    key: super::signing::JobKey,
    client: crate::tls::LazyHttp,
}

impl OpenFaas {
    pub fn new(gateway: &str, key: super::signing::JobKey) -> Self {
        Self {
            gateway: gateway.trim_end_matches('/').to_owned(),
            key,
            client: crate::tls::LazyHttp::new(Duration::from_secs(10)),
        }
    }
}

#[async_trait]
impl Sender for OpenFaas {
    fn horizon(&self) -> Duration {
        Duration::ZERO
    }

    async fn send(&self, batch: &[Outgoing]) -> anyhow::Result<Vec<Uuid>> {
        let mut accepted = Vec::with_capacity(batch.len());
        for message in batch {
            let url = format!("{}/async-function/{}", self.gateway, message.queue);
            let call_id = message.id.to_string();
            let signed = self
                .key
                .sign(&call_id, message.body.as_bytes(), super::signing::now());
            let response = self
                .client
                .get()
                .post(url)
                .header("X-Call-Id", call_id)
                .header(super::signing::HEADER, signed)
                .body(message.body.clone())
                .send()
                .await;
            match response {
                Ok(response) if response.status().is_success() => accepted.push(message.id),
                Ok(response) => {
                    tracing::warn!(queue = %message.queue, status = %response.status(), "OpenFaaS refused a message");
                }
                Err(err) if accepted.is_empty() => return Err(err.into()),
                Err(err) => {
                    tracing::warn!(queue = %message.queue, error = %crate::redact::Redacted(&err), "OpenFaaS unreachable");
                    break;
                }
            }
        }
        Ok(accepted)
    }
}
