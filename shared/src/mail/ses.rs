//! Amazon SES (API v2) delivery (the `ses` feature): `MAIL_TRANSPORT=ses`, the sender in
//! `MAIL_FROM` (a verified identity), credentials from the function's role (Lambda's
//! environment), region and endpoint as every AWS client here reads them ([`crate::aws`]). Each
//! message is plain text and HTML; the outbox row's id rides along as the `outbox-id` tag.

use super::transport::{MailTransport, OutboxMail, Refusal};
use crate::config::{ConfigError, Env};
use async_trait::async_trait;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{
    Attachment, Body, Content, Destination, EmailContent, Message, MessageTag,
};

pub struct Ses {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl Ses {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let from = env
            .get("MAIL_FROM")
            .filter(|from| from.contains('@'))
            .ok_or_else(|| {
                ConfigError::invalid("MAIL_FROM", "required with MAIL_TRANSPORT=ses (an address)")
            })?;
        Ok(Self {
            client: crate::aws::sdk_client!(aws_sdk_sesv2, env, "SESV2"),
            from,
        })
    }
}

fn cannot_build(e: impl std::fmt::Display) -> Refusal {
    Refusal(format!("cannot be built: {e}"))
}

fn content(data: &str) -> Result<Content, Refusal> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(cannot_build)
}

/// The message (plain text and HTML) and the tag that names its outbox row.
fn message_of(mail: &OutboxMail) -> Result<(Message, MessageTag), Refusal> {
    let mut message = Message::builder().subject(content(&mail.subject)?).body(
        Body::builder()
            .text(content(&mail.text)?)
            .html(content(&mail.html)?)
            .build(),
    );
    if let Some(file) = &mail.attachment {
        message = message.attachments(
            Attachment::builder()
                .file_name(&file.filename)
                .content_type(&file.content_type)
                .raw_content(aws_sdk_sesv2::primitives::Blob::new(file.bytes.clone()))
                .build()
                .map_err(cannot_build)?,
        );
    }
    let message = message.build();
    let tag = MessageTag::builder()
        .name("outbox-id")
        .value(mail.id.to_string())
        .build()
        .map_err(cannot_build)?;
    Ok((message, tag))
}

/// SES's answers that no retry changes: the message or its recipient is refused.
const PERMANENT: &[&str] = &["MessageRejected", "BadRequestException"];

#[async_trait]
impl MailTransport for Ses {
    async fn deliver(&self, mail: &OutboxMail) -> anyhow::Result<Result<(), Refusal>> {
        let (message, tag) = match message_of(mail) {
            Ok(parts) => parts,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .email_tags(tag)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.code().is_some_and(|code| PERMANENT.contains(&code)) => Ok(Err(Refusal(
                format!("SES: {}", e.message().unwrap_or("refused")),
            ))),
            Err(e) => Err(anyhow::anyhow!(
                "SES: {}",
                aws_sdk_sesv2::error::DisplayErrorContext(&e)
            )),
        }
    }
}
