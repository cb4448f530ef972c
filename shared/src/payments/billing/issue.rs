//! Issuing: an invoice leaves DRAFT with a number from its series and the parties frozen as
//! they are now, in the transaction that moves it to SENT, which also queues its PDF/A-3 (the
//! e-invoice embedded) for the `billing-documents` worker ([`super::render`]), which stores it
//! and mails it to the client. A credit note is issued the same way. An issued document is
//! rebuilt from its frozen rows only, so the e-invoice served later is the one the PDF carries.

use super::config::BillingConfig;
use super::document::{Document, Kind, Party, Seller};
use super::items::{self, LineItem};
use super::parties;
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use crate::ipfs::{self, IpfsStore};
use crate::payments::audit::{self, PaymentsAction};
use crate::payments::money::{Currency, Minor};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// The `billing-documents` worker's queue.
pub const DOCUMENTS_QUEUE: &str = "billing-documents";

/// One document for the `billing-documents` worker ([`super::render`]) to render, store and
/// mail: the job the issuing transaction queues. Who it is mailed to (and an invoice's payment
/// links) is frozen on the document's row, not carried here: no address travels in a queue.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum Render {
    Invoice { id: Uuid },
    CreditNote { id: Uuid },
}

impl Render {
    /// Queues the rendering in `tx`, the transaction that issues the document.
    pub(crate) async fn enqueue(&self, tx: &mut PgConnection) -> AppResult<()> {
        let body = serde_json::to_string(self).map_err(AppError::internal)?;
        crate::queue::enqueue(tx, DOCUMENTS_QUEUE, &body, std::time::Duration::ZERO).await?;
        Ok(())
    }
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("a stored {what} does not read back: {err}"))
}

/// The lines and totals of stored items (written by [`items::compute`], so they compute again).
pub(crate) fn totals_of(items: serde_json::Value) -> AppResult<items::Totals> {
    let items: Vec<LineItem> = serde_json::from_value(items).map_err(|e| corrupt("item", e))?;
    items::compute(&items).map_err(|e| corrupt("item", format!("{e:?}")))
}

fn party<T: serde::de::DeserializeOwned>(value: Option<serde_json::Value>) -> AppResult<T> {
    let value = value.ok_or_else(|| corrupt("party", "missing"))?;
    serde_json::from_value(value).map_err(|e| corrupt("party", e))
}

fn currency(code: &str) -> AppResult<Currency> {
    Currency::parse("currency", code).map_err(|e| corrupt("currency", e))
}

/// An issued invoice as a document (`None` while it is a DRAFT or does not exist).
pub(crate) async fn invoice_document(
    conn: &mut PgConnection,
    id: Uuid,
) -> AppResult<Option<Document>> {
    let Some(row) = sqlx::query!(
        r#"SELECT number AS "number!", (sent_at AT TIME ZONE 'UTC')::date AS "issue_date!",
                  due_date, currency, items, seller, buyer, notes
           FROM invoices WHERE id = $1 AND number IS NOT NULL"#,
        id
    )
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let totals = totals_of(row.items)?;
    let seller: Seller = party(row.seller)?;
    let buyer: Party = party(row.buyer)?;
    Ok(Some(Document {
        kind: Kind::Invoice,
        number: row.number,
        issue_date: row.issue_date,
        due_date: row.due_date,
        currency: currency(&row.currency)?,
        seller,
        buyer,
        subtotal: totals.subtotal,
        taxes: totals.taxes,
        total: totals.total,
        lines: totals.lines,
        paid: Minor::ZERO,
        notes: row.notes,
    }))
}

/// A credit note as a document (`None` when there is no such credit note).
pub(crate) async fn credit_note_document(
    conn: &mut PgConnection,
    id: Uuid,
) -> AppResult<Option<Document>> {
    let Some(row) = sqlx::query!(
        r#"SELECT c.number, (c.created_at AT TIME ZONE 'UTC')::date AS "issue_date!", c.items,
                  c.reason, i.number AS "invoice_number!", i.currency, i.seller, i.buyer
           FROM credit_notes c JOIN invoices i ON i.id = c.invoice_id WHERE c.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let totals = totals_of(row.items)?;
    Ok(Some(Document {
        kind: Kind::CreditNote {
            invoice_number: row.invoice_number,
        },
        number: row.number,
        issue_date: row.issue_date,
        due_date: None,
        currency: currency(&row.currency)?,
        seller: party(row.seller)?,
        buyer: party(row.buyer)?,
        subtotal: totals.subtotal,
        taxes: totals.taxes,
        total: totals.total,
        lines: totals.lines,
        paid: Minor::ZERO,
        notes: Some(row.reason),
    }))
}

/// Reads a stored PDF back, checked against its CID.
pub(crate) async fn read_pdf(ipfs: &dyn IpfsStore, cid: &str) -> AppResult<Vec<u8>> {
    let cid = ipfs::parse_cid(cid).ok_or_else(|| corrupt("CID", cid))?;
    ipfs::store::read(ipfs, &cid)
        .await?
        .ok_or_else(|| AppError::Unavailable("the document is not in the IPFS store".into()))
}

/// Issues invoice `id` (DRAFT → SENT), in `tx`, which holds the invoice's row lock and has
/// already set its status and `sent_at`. The number is taken last, so the series' counter stays
/// locked as briefly as it can; the PDF is rendered and mailed (to the project's client now,
/// with `payment_links`, both frozen here) by the `billing-documents` worker once this commits.
pub(crate) async fn issue_invoice(
    tx: &mut PgConnection,
    config: &BillingConfig,
    caller: &AuthUser,
    id: Uuid,
    payment_links: &str,
) -> AppResult<()> {
    let row = sqlx::query!(
        r#"SELECT project_id, (sent_at AT TIME ZONE 'UTC')::date AS "issue_date!" FROM invoices WHERE id = $1"#,
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    let seller = &config.seller;
    let buyer = parties::buyer_of(&mut *tx, row.project_id, &seller.party.country).await?;
    let client = crate::work::facade::project_client(&mut *tx, row.project_id).await?;
    let number = config
        .invoice_numbers
        .next(&mut *tx, row.issue_date)
        .await?;
    sqlx::query!(
        "UPDATE invoices SET number = $2, seller = $3, buyer = $4, mail_to = $5, mail_links = $6
         WHERE id = $1",
        id,
        number,
        serde_json::to_value(seller).map_err(AppError::internal)?,
        serde_json::to_value(&buyer).map_err(AppError::internal)?,
        client,
        payment_links,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        PaymentsAction::InvoiceIssued,
        caller,
        id,
        json!({"number": number}),
    )
    .await?;
    Render::Invoice { id }.enqueue(tx).await
}

/// Today, in UTC: the date documents carry.
pub(crate) fn today() -> Date {
    OffsetDateTime::now_utc().date()
}
