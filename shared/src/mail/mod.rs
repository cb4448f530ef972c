//! Mail, sent so that nothing is lost and no request waits on SMTP. A request that sends mail
//! calls [`send`] inside its own transaction: the message goes into `mail_outbox` with a `mailer`
//! job ([`crate::queue::enqueue`]), so it exists if and only if the change it tells about commits.
//! The `mailer` queue worker ([`Mailer`]) delivers it through the configured [`MailTransport`]:
//! SMTP (`MAIL_SMTP_URL`, lettre, the `smtp` feature, linked only into the mailer and the local
//! gateway) or Amazon SES v2 (`MAIL_TRANSPORT=ses`, the `ses` feature, linked only into the
//! mailer). A transient failure is a retry (then the dead-letter queue); a permanent refusal is
//! recorded on the row and never retried. With no transport configured, the jobs wait.

mod transport;
pub mod worker;

#[cfg(feature = "smtp")]
mod smtp;

#[cfg(feature = "ses")]
mod ses;

pub use transport::{MailTransport, OutboxAttachment, OutboxMail, Refusal};
use worker::Delivery;
pub use worker::Mailer;

use crate::config::{ConfigError, Env};
use crate::error::{AppError, AppResult};
use crate::need::{FaasValue, Need, Var, optional, secret};
use crate::queue::enqueue;
use sqlx::PgConnection;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The worker's queue, and its function's name.
pub const QUEUE: &str = "mailer";

/// What the mailer needs: where to send from, and an SMTP server.
pub const NEED: Need = Need {
    name: "mail",
    can_be_unavailable: false,
    vars: &[
        Var {
            name: "MAIL_TRANSPORT",
            sam: crate::need::SamValue::Parameter {
                name: "MailTransport",
                secret: false,
                default: Some("smtp"),
                description: "smtp (MAIL_SMTP_URL) or ses (Amazon SES v2 with the mailer's role; MAIL_FROM a verified identity)",
            },
            openfaas: FaasValue::Value { value: "smtp" },
        },
        Var {
            name: "MAIL_FROM",
            sam: optional(
                "MailFrom",
                false,
                "Sender of every mail, e.g. gantry <no-reply@example.com>",
            ),
            openfaas: FaasValue::Value {
                value: "gantry <no-reply@example.com>",
            },
        },
        Var {
            name: "MAIL_SMTP_URL",
            sam: optional(
                "MailSmtpUrl",
                true,
                "smtp://host:587?tls=required (STARTTLS) or smtps://host:465 (implicit TLS); empty: mail waits in the outbox",
            ),
            openfaas: secret("gantry-mail-smtp-url"),
        },
        Var {
            name: "MAIL_SMTP_USERNAME",
            sam: optional(
                "MailSmtpUsername",
                true,
                "SMTP user name, if the server asks for one",
            ),
            openfaas: secret("gantry-mail-smtp-username"),
        },
        Var {
            name: "MAIL_SMTP_PASSWORD",
            sam: optional("MailSmtpPassword", true, "SMTP password"),
            openfaas: secret("gantry-mail-smtp-password"),
        },
    ],
    aws: &[crate::need::AwsAccess::SesSend],
};

/// One message: plain text and HTML, to one recipient.
#[derive(Debug, Clone, Copy)]
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// The transport the environment configures: `MAIL_TRANSPORT=ses` → Amazon SES v2 (a build with
/// the `ses` feature); otherwise SMTP when `MAIL_SMTP_URL` is set (the `smtp` feature), else none
/// (jobs wait).
pub fn transport_from_env(env: &Env) -> Result<Option<Arc<dyn MailTransport>>, ConfigError> {
    let kind = env.get("MAIL_TRANSPORT").unwrap_or_default();
    match kind.trim() {
        "ses" => ses_from_env(env).map(Some),
        "" | "smtp" => match env
            .get("MAIL_SMTP_URL")
            .filter(|url| !url.trim().is_empty())
        {
            Some(url) => smtp_from_env(env, &url).map(Some),
            None => Ok(None),
        },
        _ => Err(ConfigError::invalid(
            "MAIL_TRANSPORT",
            "must be `smtp` or `ses`",
        )),
    }
}

#[cfg(feature = "smtp")]
fn smtp_from_env(env: &Env, url: &str) -> Result<Arc<dyn MailTransport>, ConfigError> {
    Ok(Arc::new(smtp::Smtp::from_env(env, url)?))
}

#[cfg(not(feature = "smtp"))]
fn smtp_from_env(_: &Env, _: &str) -> Result<Arc<dyn MailTransport>, ConfigError> {
    Err(ConfigError::invalid(
        "MAIL_SMTP_URL",
        "this function was built without the `smtp` feature of gantry",
    ))
}

#[cfg(feature = "ses")]
fn ses_from_env(env: &Env) -> Result<Arc<dyn MailTransport>, ConfigError> {
    Ok(Arc::new(ses::Ses::from_env(env)?))
}

#[cfg(not(feature = "ses"))]
fn ses_from_env(_: &Env) -> Result<Arc<dyn MailTransport>, ConfigError> {
    Err(ConfigError::invalid(
        "MAIL_TRANSPORT",
        "this function was built without the `ses` feature of gantry",
    ))
}

/// Text for an HTML body: names, numbers and links are never trusted as markup.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A file sent with a mail.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// Puts `mail` in the outbox with its delivery job, in the caller's transaction.
pub async fn send(conn: &mut PgConnection, mail: &Mail<'_>) -> AppResult<Uuid> {
    send_with(conn, mail, None).await
}

/// As [`send`], with an attachment.
pub async fn send_with(
    conn: &mut PgConnection,
    mail: &Mail<'_>,
    attachment: Option<&Attachment<'_>>,
) -> AppResult<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body,
                                  attachment_name, attachment_type, attachment)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        mail.to,
        mail.subject,
        mail.text,
        mail.html,
        attachment.map(|a| a.filename),
        attachment.map(|a| a.content_type),
        attachment.map(|a| a.bytes),
    )
    .execute(&mut *conn)
    .await?;
    let job = serde_json::to_string(&Delivery { mail_id: id }).map_err(AppError::internal)?;
    enqueue(conn, QUEUE, &job, Duration::ZERO).await?;
    Ok(id)
}

/// What expires in the outbox, for the housekeeping job: mail delivered or refused a week ago.
pub const PURGES: &[crate::purge::Purge] = &[crate::purge::Purge {
    name: "mail_outbox",
    run: |pool| {
        Box::pin(async move {
            sqlx::query!(
                "DELETE FROM mail_outbox WHERE created_at < now() - interval '7 days'
                   AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)"
            )
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
    },
}];
