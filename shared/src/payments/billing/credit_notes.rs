//! Credit notes: the correction of an issued invoice. Numbered in their own series
//! (`CREDIT_NOTE_NUMBER_FORMAT`), printed with the invoice's frozen parties, never more in all
//! than the invoice's total; each lowers what is due (`invoices.credited`), so an invoice its
//! payments now cover becomes PAID. STAFF and ADMIN issue them; whoever sees the invoice sees
//! its credit notes.

use super::issue::{self, Render};
use super::items::{self, LineItem, Totals};

use crate::domain::Role;
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::AuthUser;
use crate::payments::audit::{self, PaymentsAction};
use crate::payments::error::PaymentsError;
use crate::payments::invoices;
use crate::payments::lifecycle::InvoiceStatus;
use crate::payments::model::stored;
use crate::payments::money::Minor;
use crate::payments::settle::paid;
use crate::payments::state::PaymentsState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreditNote {
    pub id: Uuid,
    pub invoice_id: Uuid,
    #[schema(example = "CN-2027-0001")]
    pub number: String,
    pub items: Vec<LineItem>,
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "1000")]
    pub subtotal: Minor,
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "190")]
    pub tax: Minor,
    /// What it takes off the invoice's due amount, in minor units.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "1190")]
    pub total: Minor,
    pub reason: String,
    /// Its PDF/A-3 (with the e-invoice embedded), at `GET /credit-notes/{id}/pdf`; null until
    /// the `billing-documents` worker has stored it, seconds after the note is issued.
    pub pdf_cid: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `{"items": [...]}`: an invoice's credit notes, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNotes {
    pub items: Vec<CreditNote>,
}

/// A credit note to issue: positive lines, priced as an invoice's (in its currency).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditNoteInput {
    #[schema(min_items = 1, max_items = 200)]
    pub items: Vec<LineItem>,
    /// Why: one line of 1 to 500 characters, printed on the credit note.
    #[schema(schema_with = reason_schema, example = "Workshop shortened to half a day")]
    pub reason: String,
}

fn reason_schema() -> utoipa::openapi::schema::Object {
    crate::domain::line_schema(500).build()
}

async fn rows(
    conn: &mut PgConnection,
    invoice_id: Uuid,
    only: Option<Uuid>,
) -> AppResult<Vec<CreditNote>> {
    let rows = sqlx::query!(
        r#"SELECT id, invoice_id, number, items, subtotal::text AS "subtotal!", tax::text AS "tax!",
                  total::text AS "total!", reason, pdf_cid, created_at
           FROM credit_notes WHERE invoice_id = $1 AND ($2::uuid IS NULL OR id = $2) ORDER BY id"#,
        invoice_id,
        only
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(CreditNote {
                id: row.id,
                invoice_id: row.invoice_id,
                number: row.number,
                items: serde_json::from_value(row.items).map_err(AppError::internal)?,
                subtotal: stored(&row.subtotal)?,
                tax: stored(&row.tax)?,
                total: stored(&row.total)?,
                reason: row.reason,
                pdf_cid: row.pdf_cid,
                created_at: row.created_at,
            })
        })
        .collect()
}

#[tracing::instrument(name = "payments.list_credit_notes", skip_all)]
pub async fn list(pool: &PgPool, caller: &AuthUser, invoice_id: Uuid) -> AppResult<CreditNotes> {
    invoices::visible(pool, caller, invoice_id).await?;
    let mut conn = pool.acquire().await?;
    Ok(CreditNotes {
        items: rows(&mut conn, invoice_id, None).await?,
    })
}

/// The invoice a credit note belongs to, if the caller may see it (404 otherwise).
pub(crate) async fn invoice_of(
    pool: &PgPool,
    caller: &AuthUser,
    id: Uuid,
) -> AppResult<(Uuid, Option<String>)> {
    let row = sqlx::query!(
        "SELECT invoice_id, pdf_cid FROM credit_notes WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(AppError::NotFound)?;
    invoices::visible(pool, caller, row.invoice_id).await?;
    Ok((row.invoice_id, row.pdf_cid))
}

#[tracing::instrument(name = "payments.create_credit_note", skip_all)]
pub async fn create(
    state: &PaymentsState,
    caller: &AuthUser,
    invoice_id: Uuid,
    input: CreditNoteInput,
) -> AppResult<CreditNote> {
    let pool = state.db()?;
    invoices::visible(pool, caller, invoice_id).await?;
    if !matches!(caller.role, Role::Staff | Role::Admin) {
        return Err(AppError::Forbidden);
    }
    let mut errors = Vec::new();
    let reason = crate::domain::parse_line("reason", &input.reason, 500)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let totals = items::compute(&input.items).map_err(|mut e| {
        errors.append(&mut e);
        AppError::Validation(std::mem::take(&mut errors))
    })?;
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if totals.total == Minor::ZERO {
        return Err(AppError::Validation(vec![FieldError::semantic(
            "items",
            "the total must be greater than zero",
        )]));
    }
    let mut tx = pool.begin().await?;
    let id = issue_credit_note(&mut tx, state, caller, invoice_id, &totals, &reason, None).await?;
    let note = rows(&mut tx, invoice_id, Some(id))
        .await?
        .pop()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the credit note went missing")))?;
    tx.commit().await?;
    Ok(note)
}

/// Issues a credit note of `totals` against invoice `invoice_id` in `tx`: locks the invoice,
/// checks it is issued and that the note fits what is left to credit, numbers it, lowers what
/// is due (settling the invoice), and queues its PDF, which the `billing-documents` worker
/// stores and mails to the client. What a refund started here calls as well.
pub(crate) async fn issue_credit_note(
    tx: &mut PgConnection,
    state: &PaymentsState,
    caller: &AuthUser,
    invoice_id: Uuid,
    totals: &Totals,
    reason: &str,
    refund_id: Option<Uuid>,
) -> AppResult<Uuid> {
    let config = state.books()?;
    let invoice = sqlx::query!(
        r#"SELECT amount::text AS "amount!", credited::text AS "credited!",
                  status AS "status: InvoiceStatus", number IS NOT NULL AS "numbered!", mail_to
           FROM invoices WHERE id = $1 FOR UPDATE"#,
        invoice_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if !invoice.numbered
        || !matches!(
            invoice.status,
            InvoiceStatus::Sent | InvoiceStatus::Overdue | InvoiceStatus::Paid
        )
    {
        return Err(PaymentsError::NotIssued(invoice.status).into());
    }
    let (amount, credited) = (stored(&invoice.amount)?, stored(&invoice.credited)?);
    let left = amount.saturating_sub(credited);
    if totals.total > left {
        return Err(PaymentsError::CreditExceedsInvoice {
            total: totals.total,
            left,
        }
        .into());
    }
    let number = config
        .credit_note_numbers
        .next(&mut *tx, issue::today())
        .await?;
    let id = Uuid::now_v7();
    sqlx::query!(
        r#"INSERT INTO credit_notes (id, invoice_id, number, items, subtotal, tax, taxes, total,
                                     reason, created_by, refund_id, mail_to)
           VALUES ($1, $2, $3, $4, $5::text::numeric, $6::text::numeric, $7, $8::text::numeric,
                   $9, $10, $11, $12)"#,
        id,
        invoice_id,
        number,
        serde_json::to_value(totals.items()).map_err(AppError::internal)?,
        totals.subtotal.to_string(),
        totals.tax().to_string(),
        totals.taxes_json(),
        totals.total.to_string(),
        reason,
        caller.user_id,
        refund_id,
        // To whom its invoice went.
        invoice.mail_to,
    )
    .execute(&mut *tx)
    .await?;
    let due = left.saturating_sub(totals.total);
    let status = invoice
        .status
        .settle(due, paid(&mut *tx, invoice_id).await?);
    sqlx::query!(
        r#"UPDATE invoices SET credited = credited + $2::text::numeric, status = $3,
                  updated_at = now() WHERE id = $1"#,
        invoice_id,
        totals.total.to_string(),
        status as InvoiceStatus,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        PaymentsAction::CreditNoteIssued,
        caller,
        invoice_id,
        json!({"credit_note_id": id, "number": number, "total": totals.total.to_string(),
               "from": invoice.status, "to": status}),
    )
    .await?;
    Render::CreditNote { id }.enqueue(tx).await?;
    Ok(id)
}
