//! Invoice rules: list, read, create, change, and the payments of one.
//!
//! Access: an invoice is visible exactly when its project is (asked through the work area's
//! facade: a CLIENT sees their own projects' invoices); STAFF and ADMIN create and change them.
//! An invoice out of sight is a 404 whatever the method. Every change writes its audit row in
//! the same transaction, with the invoice row locked (as the payment paths lock it).

pub mod api;

use super::audit::{self, PaymentsAction};
use super::billing;
use super::billing::items::{LineItem, Totals};
use super::dto::{InvoiceInput, InvoiceQuery, InvoiceUpdate};
use super::lifecycle::{InvoiceStatus, PaymentStatus, Refused};
use super::model::{Invoice, InvoiceRow, Payment, PaymentMethod, Payments, stored};
use super::money::{AmountText, Currency, Minor, positive};
use super::settle::paid;
use super::state::PaymentsState;
use crate::domain::{Page, Role, page_limit};
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::AuthUser;
use crate::payments::error::PaymentsError;
use crate::work::facade;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

const WRITERS: &[Role] = &[Role::Staff, Role::Admin];

impl From<Refused> for AppError {
    fn from(refused: Refused) -> Self {
        Self::Conflict(refused.to_string())
    }
}

/// The invoice, as the API shows it.
async fn fetch(conn: &mut PgConnection, id: Uuid) -> AppResult<Option<Invoice>> {
    let row = sqlx::query_as!(
        InvoiceRow,
        r#"SELECT id AS "id!", project_id AS "project_id!", number, amount AS "amount!",
                  items AS "items!", subtotal AS "subtotal!", tax AS "tax!",
                  credited AS "credited!", notes, pdf_cid,
                  currency AS "currency!", status AS "status!: InvoiceStatus", due_date,
                  blockchain_tx_hash, amount_paid AS "amount_paid!", created_at AS "created_at!",
                  updated_at AS "updated_at!"
           FROM invoice_view WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    row.map(Invoice::try_from).transpose()
}

/// The invoice if the caller may see it (on `conn`); 404 otherwise, never telling whether it
/// exists.
async fn visible_on(conn: &mut PgConnection, caller: &AuthUser, id: Uuid) -> AppResult<Invoice> {
    let invoice = fetch(&mut *conn, id).await?.ok_or(AppError::NotFound)?;
    if !facade::project_visible(&mut *conn, caller, invoice.project_id).await? {
        return Err(AppError::NotFound);
    }
    Ok(invoice)
}

/// The invoice if the caller may see it; 404 otherwise.
pub(crate) async fn visible(pool: &PgPool, caller: &AuthUser, id: Uuid) -> AppResult<Invoice> {
    let mut conn = pool.acquire().await?;
    visible_on(&mut conn, caller, id).await
}

#[tracing::instrument(name = "payments.list_invoices", skip_all)]
pub async fn list(
    pool: &PgPool,
    caller: &AuthUser,
    query: InvoiceQuery,
) -> AppResult<Page<Invoice>> {
    let limit = page_limit(query.limit).map_err(|e| AppError::Validation(vec![e]))?;
    let scope = facade::visible_projects(pool, caller).await?;
    let rows = sqlx::query_as!(
        InvoiceRow,
        r#"SELECT id AS "id!", project_id AS "project_id!", number, amount AS "amount!",
                  items AS "items!", subtotal AS "subtotal!", tax AS "tax!",
                  credited AS "credited!", notes, pdf_cid,
                  currency AS "currency!", status AS "status!: InvoiceStatus", due_date,
                  blockchain_tx_hash, amount_paid AS "amount_paid!", created_at AS "created_at!",
                  updated_at AS "updated_at!"
           FROM invoice_view
           WHERE ($1::uuid[] IS NULL OR project_id = ANY($1))
             AND ($2::uuid IS NULL OR project_id = $2)
             AND ($3::invoice_status IS NULL OR status = $3)
             AND ($4::uuid IS NULL OR id > $4)
           ORDER BY id LIMIT $5"#,
        scope.as_deref(),
        query.project_id,
        query.status as Option<InvoiceStatus>,
        query.cursor,
        i64::from(limit) + 1,
    )
    .fetch_all(pool)
    .await?;
    let invoices = rows
        .into_iter()
        .map(Invoice::try_from)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Page::of(invoices, limit, |i| i.id))
}

/// The lines an invoice is priced with: `items` (and `amount`, if given, must be their total),
/// else one line of `amount`. Every bad field in one answer.
fn priced(
    amount: Option<&AmountText>,
    items: Option<&[LineItem]>,
    required: bool,
) -> AppResult<Option<Totals>> {
    let totals = match (items, amount) {
        (Some(items), amount) => {
            let totals = billing::items::compute(items).map_err(AppError::Validation)?;
            if let Some(amount) = amount {
                let given =
                    Minor::parse("amount", &amount.0).map_err(|e| AppError::Validation(vec![e]))?;
                if given != totals.total {
                    return Err(AppError::Validation(vec![FieldError::semantic(
                        "amount",
                        format!(
                            "must equal the items' total ({}) or be left out",
                            totals.total
                        ),
                    )]));
                }
            }
            totals
        }
        (None, Some(amount)) => {
            let (Some(amount), _) = positive(Some(&amount.0), None)? else {
                return Err(AppError::internal(anyhow::anyhow!(
                    "validated money went missing"
                )));
            };
            billing::items::single(amount)
        }
        (None, None) if required => {
            return Err(AppError::Validation(vec![FieldError::semantic(
                "amount",
                "give amount, or items",
            )]));
        }
        (None, None) => return Ok(None),
    };
    if totals.total == Minor::ZERO {
        return Err(AppError::Validation(vec![FieldError::semantic(
            "items",
            "the total must be greater than zero",
        )]));
    }
    Ok(Some(totals))
}

/// Notes of at most 2000 characters without NUL; blank is none.
fn notes(text: Option<String>) -> AppResult<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let text = crate::domain::parse_text("notes", &text, 2000)
        .map_err(|e| AppError::Validation(vec![e]))?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

fn items_json(totals: &Totals) -> AppResult<serde_json::Value> {
    serde_json::to_value(totals.items()).map_err(AppError::internal)
}

#[tracing::instrument(name = "payments.create_invoice", skip_all)]
pub async fn create(pool: &PgPool, caller: &AuthUser, input: InvoiceInput) -> AppResult<Invoice> {
    let currency =
        Currency::parse("currency", &input.currency).map_err(|e| AppError::Validation(vec![e]))?;
    let Some(totals) = priced(input.amount.as_ref(), input.items.as_deref(), true)? else {
        return Err(AppError::internal(anyhow::anyhow!(
            "validated items went missing"
        )));
    };
    let notes = notes(input.notes)?;
    if !facade::project_visible(pool, caller, input.project_id).await? {
        return Err(AppError::Validation(vec![FieldError::semantic(
            "project_id",
            "does not name a project",
        )]));
    }
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        r#"INSERT INTO invoices (id, project_id, amount, currency, due_date, created_by, items,
                                 subtotal, tax, taxes, notes)
           VALUES ($1, $2, $3::text::numeric, $4, $5, $6, $7, $8::text::numeric,
                   $9::text::numeric, $10, $11)"#,
        id,
        input.project_id,
        totals.total.to_string(),
        currency.code(),
        input.due_date,
        caller.user_id,
        items_json(&totals)?,
        totals.subtotal.to_string(),
        totals.tax().to_string(),
        totals.taxes_json(),
        notes,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        PaymentsAction::InvoiceCreated,
        caller,
        id,
        json!({"project_id": input.project_id, "amount": totals.total.to_string(), "currency": currency.code()}),
    )
    .await?;
    tx.commit().await?;
    visible(pool, caller, id).await
}

#[tracing::instrument(name = "payments.update_invoice", skip_all)]
pub async fn update(
    state: &PaymentsState,
    caller: &AuthUser,
    id: Uuid,
    input: InvoiceUpdate,
) -> AppResult<Invoice> {
    let pool = state.db()?;
    visible(pool, caller, id).await?;
    if !WRITERS.contains(&caller.role) {
        return Err(AppError::Forbidden);
    }
    let (_, currency) = positive(None, input.currency.as_deref())?;
    let totals = priced(input.amount.as_ref(), input.items.as_deref(), false)?;
    let new_notes = input.notes.map(notes).transpose()?;
    let mut tx = pool.begin().await?;
    let current = sqlx::query!(
        r#"SELECT amount::text AS "amount!", currency, status AS "status: InvoiceStatus", due_date,
                  items, notes
           FROM invoices WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    if current.status != InvoiceStatus::Draft {
        let amount_changes = totals
            .as_ref()
            .is_some_and(|t| t.total != stored(&current.amount).unwrap_or_default())
            || currency
                .as_ref()
                .is_some_and(|c| c.code() != current.currency);
        if amount_changes {
            return Err(Refused::AmountFixed.into());
        }
        let items_change = match (&totals, &input.items) {
            (Some(t), Some(_)) => items_json(t)? != current.items,
            _ => false,
        };
        let notes_change = new_notes.as_ref().is_some_and(|n| *n != current.notes);
        if items_change || notes_change {
            return Err(Refused::ItemsFixed.into());
        }
    }
    let status = match input.status {
        Some(target) => current.status.request(target, paid(&mut tx, id).await?)?,
        None => current.status,
    };
    let due_date = input.due_date.unwrap_or(current.due_date);
    let priced_now = totals.filter(|_| current.status == InvoiceStatus::Draft);
    let (items, taxes) = match &priced_now {
        Some(t) => (Some(items_json(t)?), Some(t.taxes_json())),
        None => (None, None),
    };
    sqlx::query!(
        r#"UPDATE invoices SET amount = COALESCE($2::text::numeric, amount),
                  currency = COALESCE($3, currency), status = $4, due_date = $5, updated_at = now(),
                  sent_at = CASE WHEN $4::invoice_status <> 'DRAFT' THEN COALESCE(sent_at, now()) END,
                  items = COALESCE($6, items), subtotal = COALESCE($7::text::numeric, subtotal),
                  tax = COALESCE($8::text::numeric, tax), taxes = COALESCE($9, taxes),
                  notes = CASE WHEN $10 THEN $11 ELSE notes END
           WHERE id = $1"#,
        id,
        priced_now.as_ref().map(|t| t.total.to_string()),
        currency.as_ref().map(Currency::code),
        status as InvoiceStatus,
        due_date,
        items,
        priced_now.as_ref().map(|t| t.subtotal.to_string()),
        priced_now.as_ref().map(|t| t.tax().to_string()),
        taxes,
        new_notes.is_some() && current.status == InvoiceStatus::Draft,
        new_notes.flatten(),
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        PaymentsAction::InvoiceUpdated,
        caller,
        id,
        json!({"from": current.status, "to": status}),
    )
    .await?;
    if current.status == InvoiceStatus::Draft && status == InvoiceStatus::Sent {
        let links = pay_links(state, &mut tx, id).await?;
        billing::issue::issue_invoice(&mut tx, state.books()?, caller, id, &links).await?;
    }
    tx.commit().await?;
    visible(pool, caller, id).await
}

/// How the client can pay a just-issued invoice, for its mail: the app's page when
/// `PUBLIC_BASE_URL` is set, and the EIP-681 URI when a chain takes its currency.
async fn pay_links(state: &PaymentsState, tx: &mut PgConnection, id: Uuid) -> AppResult<String> {
    let invoice = fetch(&mut *tx, id).await?.ok_or(AppError::NotFound)?;
    let mut links = String::new();
    if let Some(base) = &state.books()?.pay_base_url {
        links.push_str(&format!(
            "Pay by card or in bitcoin: {base}/invoices/{id}\n"
        ));
    }
    let invoice = state.chains().with_payment_uri(state.rpc(), invoice).await;
    if let Some(uri) = invoice.payment_uri {
        links.push_str(&format!(
            "Pay on chain from a wallet linked to your account: {uri}\n"
        ));
    }
    Ok(links)
}

#[tracing::instrument(name = "payments.list_payments", skip_all)]
pub async fn payments(pool: &PgPool, caller: &AuthUser, id: Uuid) -> AppResult<Payments> {
    visible(pool, caller, id).await?;
    let mut conn = pool.acquire().await?;
    Ok(Payments {
        items: payment_rows(&mut conn, id, None).await?,
    })
}

/// The payments of `invoice_id` (only the one with id `only`, if given), oldest first.
pub(crate) async fn payment_rows(
    conn: &mut PgConnection,
    invoice_id: Uuid,
    only: Option<Uuid>,
) -> AppResult<Vec<Payment>> {
    let rows = sqlx::query!(
        r#"SELECT id, invoice_id, amount::text AS "amount!", currency,
                  method AS "method: PaymentMethod", provider, provider_ref,
                  status AS "status: PaymentStatus", refunded::text AS "refunded!",
                  created_at, updated_at
           FROM payments WHERE invoice_id = $1 AND ($2::uuid IS NULL OR id = $2) ORDER BY id"#,
        invoice_id,
        only
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Payment {
                id: row.id,
                invoice_id: row.invoice_id,
                amount: stored(&row.amount)?,
                currency: row.currency,
                payment_method: row.method,
                provider: row.provider,
                transaction_id: row.provider_ref,
                status: row.status,
                refunded: stored(&row.refunded)?,
                created_at: row.created_at,
                updated_at: row.updated_at,
            })
        })
        .collect()
}

/// A payable invoice the caller may see, locked for the rest of `tx`: what starting a payment
/// needs. Its outstanding amount is what is left to pay.
pub(crate) struct Payable {
    pub invoice: Invoice,
    pub outstanding: Minor,
    pub currency: Currency,
}

pub(crate) async fn lock_payable(
    caller: &AuthUser,
    id: Uuid,
    tx: &mut sqlx::PgConnection,
) -> AppResult<Payable> {
    // Lock first, then read: a payment may land until the lock is ours.
    sqlx::query!("SELECT id FROM invoices WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(&mut *tx)
        .await?;
    let invoice = visible_on(tx, caller, id).await?;
    if !invoice.status.payable() {
        return Err(PaymentsError::NotPayable(invoice.status).into());
    }
    let outstanding = invoice.outstanding();
    if outstanding == Minor::ZERO {
        return Err(PaymentsError::NothingLeftToPay.into());
    }
    let currency = Currency::parse("currency", &invoice.currency)
        .map_err(|e| AppError::internal(anyhow::anyhow!("a stored currency: {e}")))?;
    Ok(Payable {
        invoice,
        outstanding,
        currency,
    })
}

/// A payment a provider has just opened for an invoice.
pub(crate) struct Started<'a> {
    pub provider: &'a str,
    pub provider_ref: &'a str,
    pub method: PaymentMethod,
}

/// What [`record_started`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The payment's id: new, or recorded before for this invoice (a retry).
    Payment(Uuid),
    /// The provider object is already another invoice's payment.
    OfAnotherInvoice,
}

impl Recorded {
    /// For a provider whose objects we asked it to make for this invoice: another invoice's
    /// object in its answer is the provider's fault.
    pub(crate) fn made_by_provider(self, started: &Started<'_>) -> AppResult<Uuid> {
        match self {
            Self::Payment(id) => Ok(id),
            Self::OfAnotherInvoice => {
                tracing::error!(
                    provider = started.provider,
                    reference = started.provider_ref,
                    "the provider answered with an object of another invoice"
                );
                Err(AppError::BadGateway(
                    "the payment provider answered with another invoice's payment".into(),
                ))
            }
        }
    }
}

/// Records a payment of the outstanding amount as PENDING, with its audit row, in `tx` (which
/// holds the invoice's lock). Recording the same provider object again changes nothing; one
/// that is another invoice's is refused, also when both are recorded at once (the unique
/// (provider, provider_ref) makes the second wait for the first).
pub(crate) async fn record_started(
    tx: &mut PgConnection,
    caller: &AuthUser,
    payable: &Payable,
    started: &Started<'_>,
) -> AppResult<Recorded> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query!(
        r#"INSERT INTO payments (id, invoice_id, amount, currency, method, provider, provider_ref)
           VALUES ($1, $2, $3::text::numeric, $4, $5, $6, $7)
           ON CONFLICT (provider, provider_ref) WHERE NOT (status = 'FAILED' AND provider LIKE 'evm:%')
           DO NOTHING"#,
        id,
        payable.invoice.id,
        payable.outstanding.to_string(),
        payable.currency.code(),
        started.method as PaymentMethod,
        started.provider,
        started.provider_ref,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // The row that holds the object (a FAILED on-chain payment has let go of its
        // transaction: see the unique index payments_provider_ref).
        let owner = sqlx::query!(
            r#"SELECT id, invoice_id FROM payments WHERE provider = $1 AND provider_ref = $2
                 AND NOT (status = 'FAILED' AND provider LIKE 'evm:%')"#,
            started.provider,
            started.provider_ref
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(PaymentsError::PaymentChanged)?;
        return Ok(if owner.invoice_id == payable.invoice.id {
            Recorded::Payment(owner.id)
        } else {
            Recorded::OfAnotherInvoice
        });
    }
    audit::record(
        tx,
        PaymentsAction::PaymentStarted,
        caller,
        payable.invoice.id,
        json!({"payment_id": id, "provider": started.provider, "provider_ref": started.provider_ref}),
    )
    .await?;
    Ok(Recorded::Payment(id))
}
