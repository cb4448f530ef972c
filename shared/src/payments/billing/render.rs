//! The `billing-documents` worker: renders an issued invoice's or credit note's PDF/A-3 (its
//! Factur-X e-invoice embedded), stores it through the IPFS store, records its CID and mails it
//! to the client with the PDF attached.
//!
//! Issuing (the number, the frozen parties and lines, the audit row) happens in the request's
//! transaction, which also queues this job ([`Render::enqueue`], in [`issue`]): the job exists
//! if and only if the document does. The PDF writer and its font are the largest part of a binary that links
//! them, so only this worker (and the local gateway) does; the functions that issue stay small.
//!
//! Rendering reads the frozen rows only, so a delivery that comes twice renders the same
//! document. The CID is written only where none is yet (`pdf_cid IS NULL`), in the transaction
//! that puts the mail in the outbox and writes the audit row: of two deliveries, or two workers
//! at once, exactly one stores it and mails it.

use super::document::{self, Document, Kind};
use super::issue::{self, Render};
use super::parties;
use crate::audit::{self, Entry};
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Trigger};
use crate::ipfs::{self, IpfsConfig, IpfsStore};
use crate::mail::{self, Attachment, Mail};
use crate::payments::audit::PaymentsAction;
use crate::payments::money::Minor;
use crate::queue::{Job, JobError, JobHandler, signing};
use async_trait::async_trait;
use serde_json::json;
use sqlx::PgConnection;
use std::sync::Arc;
use uuid::Uuid;

/// The queue (and function) name.
pub const QUEUE: &str = issue::DOCUMENTS_QUEUE;

/// `billing-documents`: a job per issued invoice and credit note.
pub static BILLING_DOCUMENTS: FunctionSpec = FunctionSpec {
    name: QUEUE,
    trigger: Trigger::Queue {
        build: |platform| {
            let ipfs = IpfsConfig::from_env(&platform.env, crate::runtime::under_lambda())?;
            Ok(Arc::new(Renderer::new(
                platform.db.clone(),
                ipfs.build(&platform.env),
            )))
        },
        schedule: None,
    },
    needs: &[
        &DATABASE,
        &signing::NEED,
        &crate::ipfs::config::NEED,
        &crate::ipfs::config::STORES,
    ],
};

/// Where a document stands: its invoice, its CID once stored, and whom it is mailed to (frozen
/// at its issue), with what payment links.
struct Standing {
    invoice_id: Uuid,
    pdf_cid: Option<String>,
    mail_to: Option<Uuid>,
    links: String,
    /// A VOID invoice's PDF is stored (its number was taken) but not mailed.
    void: bool,
}

/// The worker's handler.
pub struct Renderer {
    db: Db,
    ipfs: Arc<dyn IpfsStore>,
}

impl Renderer {
    pub fn new(db: Db, ipfs: Arc<dyn IpfsStore>) -> Self {
        Self { db, ipfs }
    }

    /// Renders, stores and mails one document; false when it was stored before (by an earlier
    /// delivery or another worker) and nothing was done.
    async fn render(&self, task: &Render) -> AppResult<bool> {
        let pool = self.db.pool()?;
        let mut conn = pool.acquire().await?;
        let Some(standing) = standing(&mut conn, task).await? else {
            return Err(AppError::NotFound);
        };
        if standing.pdf_cid.is_some() {
            return Ok(false);
        }
        let doc = match task {
            Render::Invoice { id } => issue::invoice_document(&mut conn, *id).await?,
            Render::CreditNote { id } => issue::credit_note_document(&mut conn, *id).await?,
        }
        .ok_or(AppError::NotFound)?;
        drop(conn);
        let pdf = document::render_pdf(&doc).map_err(AppError::internal)?;
        let stored = ipfs::store::store(&*self.ipfs, &pdf).await?;
        let cid = ipfs::to_text(&stored.file.root);

        let mut tx = pool.begin().await?;
        let (written, what, id) = match task {
            Render::Invoice { id } => (
                sqlx::query!(
                    "UPDATE invoices SET pdf_cid = $2 WHERE id = $1 AND pdf_cid IS NULL",
                    id,
                    cid
                )
                .execute(&mut *tx)
                .await?,
                "invoice",
                *id,
            ),
            Render::CreditNote { id } => (
                sqlx::query!(
                    "UPDATE credit_notes SET pdf_cid = $2 WHERE id = $1 AND pdf_cid IS NULL",
                    id,
                    cid
                )
                .execute(&mut *tx)
                .await?,
                "credit_note",
                *id,
            ),
        };
        if written.rows_affected() == 0 {
            return Ok(false);
        }
        let to = match (standing.mail_to, standing.void) {
            (Some(client), false) => parties::email_of(&mut tx, client).await?,
            _ => None,
        };
        audit::record(
            &mut tx,
            Entry {
                action: PaymentsAction::DocumentStored,
                actor_id: None,
                subject_id: Some(standing.invoice_id),
                details: json!({"document": what, "id": id, "number": doc.number, "pdf_cid": cid,
                                "mailed": to.is_some()}),
            },
        )
        .await?;
        if let Some(to) = to {
            mail_document(&mut tx, &to, &doc, &pdf, &standing.links).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

async fn standing(conn: &mut PgConnection, task: &Render) -> AppResult<Option<Standing>> {
    Ok(match task {
        Render::Invoice { id } => sqlx::query!(
            r#"SELECT pdf_cid, mail_to, mail_links, status = 'VOID' AS "void!"
               FROM invoices WHERE id = $1 AND number IS NOT NULL"#,
            id
        )
        .fetch_optional(conn)
        .await?
        .map(|row| Standing {
            invoice_id: *id,
            pdf_cid: row.pdf_cid,
            mail_to: row.mail_to,
            links: row.mail_links.unwrap_or_default(),
            void: row.void,
        }),
        Render::CreditNote { id } => sqlx::query!(
            "SELECT invoice_id, pdf_cid, mail_to FROM credit_notes WHERE id = $1",
            id
        )
        .fetch_optional(conn)
        .await?
        .map(|row| Standing {
            invoice_id: row.invoice_id,
            pdf_cid: row.pdf_cid,
            mail_to: row.mail_to,
            links: String::new(),
            void: false,
        }),
    })
}

/// How long after its issue a document without a PDF is taken for lost (its job dead-lettered,
/// say) and queued again by [`requeue_unrendered`].
pub const RENDER_GRACE_MINUTES: i32 = 15;

/// Queues again every document issued over [`RENDER_GRACE_MINUTES`] ago that still has no PDF
/// (a job that ran out of attempts while the IPFS store was down); the reconcile run calls it.
/// Rendering is idempotent, so a job that was only slow costs a second render, never a second
/// mail. Returns how many it queued.
pub async fn requeue_unrendered(pool: &sqlx::PgPool) -> AppResult<u64> {
    let invoices = sqlx::query_scalar!(
        "SELECT id FROM invoices WHERE number IS NOT NULL AND pdf_cid IS NULL
           AND sent_at < now() - make_interval(mins => $1)",
        RENDER_GRACE_MINUTES
    )
    .fetch_all(pool)
    .await?;
    let notes = sqlx::query_scalar!(
        "SELECT id FROM credit_notes WHERE pdf_cid IS NULL
           AND created_at < now() - make_interval(mins => $1)",
        RENDER_GRACE_MINUTES
    )
    .fetch_all(pool)
    .await?;
    let tasks = invoices
        .into_iter()
        .map(|id| Render::Invoice { id })
        .chain(notes.into_iter().map(|id| Render::CreditNote { id }));
    let mut queued = 0;
    let mut conn = pool.acquire().await?;
    for task in tasks {
        let body = serde_json::to_string(&task).map_err(AppError::internal)?;
        crate::queue::enqueue_once(&mut conn, QUEUE, &body, std::time::Duration::ZERO).await?;
        queued += 1;
    }
    Ok(queued)
}

#[async_trait]
impl JobHandler for Renderer {
    #[tracing::instrument(name = "billing_documents", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let task: Render = serde_json::from_str(&job.body)
            .map_err(|e| JobError::drop(format!("not a billing-documents task: {e}")))?;
        match self.render(&task).await {
            Ok(stored) => {
                tracing::info!(?task, stored, "billing document");
                Ok(())
            }
            // Issued documents are never deleted: one that is not there never will be.
            Err(AppError::NotFound) => Err(JobError::drop(format!("no issued document: {task:?}"))),
            Err(err) => Err(JobError::Retry(anyhow::anyhow!("{err}"))),
        }
    }
}

/// Mails `doc` with its PDF attached, in `tx`.
async fn mail_document(
    tx: &mut PgConnection,
    to: &str,
    doc: &Document,
    pdf: &[u8],
    extra: &str,
) -> AppResult<()> {
    let exponent = doc.currency.exponent();
    let money = |m: Minor| format!("{} {}", m.to_decimal(exponent), doc.currency.code());
    let (title, subject) = match &doc.kind {
        Kind::Invoice => (
            "Invoice",
            format!("Invoice {} from {}", doc.number, doc.seller.party.name),
        ),
        Kind::CreditNote { invoice_number } => (
            "Credit note",
            format!("Credit note {} for invoice {invoice_number}", doc.number),
        ),
    };
    let due = doc
        .due_date
        .map(|d| format!("Due: {d}\n"))
        .unwrap_or_default();
    let text = format!(
        "{title} {number}\nIssued: {issued}\n{due}Total: {total}\n\n{extra}\nThe {lower} is attached as a PDF with its e-invoice (Factur-X) embedded.\n",
        number = doc.number,
        issued = doc.issue_date,
        total = money(doc.total),
        lower = title.to_lowercase(),
    );
    let html = format!("<pre>{}</pre>", mail::escape_html(&text));
    let filename = format!("{}.pdf", doc.number.replace('/', "-"));
    mail::send_with(
        tx,
        &Mail {
            to,
            subject: &subject,
            text: &text,
            html: &html,
        },
        Some(&Attachment {
            filename: &filename,
            content_type: "application/pdf",
            bytes: pdf,
        }),
    )
    .await?;
    Ok(())
}
