//! What a mail transport is: one message in, delivered, refused for good, or failed for now.

use async_trait::async_trait;
use uuid::Uuid;

/// One message as a transport sends it.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachment: Option<OutboxAttachment>,
}

/// A file a mail carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxAttachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Why a delivery failed for good (the server refused the message or its recipient).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

#[async_trait]
pub trait MailTransport: Send + Sync {
    /// `Ok(Err(refusal))`: refused for good; `Err`: transient (try again later).
    async fn deliver(&self, mail: &OutboxMail) -> anyhow::Result<Result<(), Refusal>>;
}
