//! SMTP delivery with lettre (the `smtp` feature): `MAIL_SMTP_URL` in lettre's URL form
//! (`smtp://host:25` plain, `smtp://host:587?tls=required` STARTTLS, `smtps://host:465` implicit
//! TLS), credentials from `MAIL_SMTP_USERNAME` and `MAIL_SMTP_PASSWORD` (or their `*_FILE`
//! secrets), TLS through rustls on the ring provider. Each message is plain text and HTML
//! (`multipart/alternative`) with the outbox row's id as its `Message-ID`.

use super::transport::{MailTransport, OutboxAttachment, OutboxMail, Refusal};
use crate::config::{ConfigError, Env};
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    pub fn from_env(env: &Env, url: &str) -> Result<Self, ConfigError> {
        crate::tls::install_provider();
        let from: Mailbox = env
            .get("MAIL_FROM")
            .ok_or_else(|| ConfigError::invalid("MAIL_FROM", "required with MAIL_SMTP_URL"))?
            .parse()
            .map_err(|e| ConfigError::invalid("MAIL_FROM", format!("not a mailbox: {e}")))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| ConfigError::invalid("MAIL_SMTP_URL", e.to_string()))?
            .timeout(Some(TIMEOUT));
        if let Some(user) = env.get("MAIL_SMTP_USERNAME") {
            let password = env.get("MAIL_SMTP_PASSWORD").unwrap_or_default();
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

/// The body, inside `multipart/mixed` with the attachment when there is one.
fn with_attachment(
    body: MultiPart,
    attachment: Option<&OutboxAttachment>,
) -> Result<MultiPart, Refusal> {
    let Some(file) = attachment else {
        return Ok(body);
    };
    let content_type = ContentType::parse(&file.content_type)
        .map_err(|e| Refusal(format!("the attachment's content type: {e}")))?;
    Ok(MultiPart::mixed().multipart(body).singlepart(
        LettreAttachment::new(file.filename.clone()).body(file.bytes.clone(), content_type),
    ))
}

#[async_trait]
impl MailTransport for Smtp {
    async fn deliver(&self, mail: &OutboxMail) -> anyhow::Result<Result<(), Refusal>> {
        let to: Mailbox = match mail.to.parse() {
            Ok(to) => to,
            Err(e) => return Ok(Err(Refusal(format!("not a mailbox: {e}")))),
        };
        let domain = self.from.email.domain();
        let body = match with_attachment(
            MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()),
            mail.attachment.as_ref(),
        ) {
            Ok(body) => body,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .message_id(Some(format!("<{}@{domain}>", mail.id)))
            .multipart(body);
        let message = match message {
            Ok(message) => message,
            Err(e) => return Ok(Err(Refusal(format!("cannot be built: {e}")))),
        };
        match self.transport.send(message).await {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.is_permanent() => Ok(Err(Refusal(e.to_string()))),
            Err(e) => Err(anyhow::anyhow!("SMTP: {e}")),
        }
    }
}
