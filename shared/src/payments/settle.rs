//! How a provider's report reaches the books, the same for every provider: in one transaction,
//! lock the invoice, then the ledger head; drop a redelivery; check the report against our
//! rows; move the payment and the invoice through [`super::lifecycle`]; append the ledger row.
//! Either all of it commits or none of it does, and concurrent deliveries of one event apply
//! once (the second waits on the locks, then finds the event in the ledger).

use super::ledger::{self, Entry};
use super::lifecycle::{Dispute, InvoiceStatus, PaymentEvent, PaymentState, PaymentStatus};
use super::model::stored;
use super::money::Minor;
use crate::error::AppResult;
use sqlx::{PgConnection, PgPool};
use std::borrow::Cow;
use uuid::Uuid;

/// One event as a provider reported it.
#[derive(Debug, Clone)]
pub struct Report {
    /// `stripe`, `btcpay`, `evm:<chain_id>`: also the payments' `provider`.
    pub provider: Cow<'static, str>,
    /// Unique per provider: a redelivery has the same id.
    pub event_id: String,
    pub event_type: String,
    /// The provider object it is about (a PaymentIntent, a BTCPay invoice).
    pub provider_ref: String,
    /// What it does to the payment.
    pub event: PaymentEvent,
    /// What the provider says was paid, checked against our payment before a success credits
    /// (unless `records_amount`).
    pub amount: Option<Minor>,
    /// The amount is what was really paid, whatever was asked (a chain transfer): a success
    /// records it as the payment's amount instead of checking it. Under- and over-payment are
    /// then visible, and the invoice is PAID only when its confirmed payments cover it.
    pub records_amount: bool,
    /// Compared without regard to case (Stripe writes `usd`).
    pub currency: Option<String>,
    /// The invoice the provider object names (its metadata), checked against our payment's.
    pub invoice_id: Option<Uuid>,
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// This event id is in the ledger already: nothing happened.
    Duplicate,
    /// No payment of ours is this provider object: recorded only.
    Ignored,
    /// It does not match our payment (amount, currency or invoice): recorded, not credited.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
        }
    }
}

struct Locked {
    payment_id: Uuid,
    invoice_id: Uuid,
    currency: String,
    state: PaymentState,
    /// What its payments must cover (its total less its credit notes).
    invoice_amount: Minor,
    invoice_status: InvoiceStatus,
}

/// Confirmed payments of `invoice_id`, net of refunds.
pub async fn paid(conn: &mut PgConnection, invoice_id: Uuid) -> AppResult<Minor> {
    let sum = sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(amount - refunded), 0)::text AS "paid!" FROM payments
           WHERE invoice_id = $1 AND status IN ('CONFIRMED', 'REFUNDED')"#,
        invoice_id
    )
    .fetch_one(conn)
    .await?;
    stored(&sum)
}

/// Finds our payment for the report and locks its invoice and itself (in that order, as every
/// writer of invoices does).
async fn lock(conn: &mut PgConnection, report: &Report) -> AppResult<Option<Locked>> {
    // A FAILED on-chain payment may share its transaction with a later, live one (the unique
    // index payments_provider_ref): the live one is the one a report is about.
    let Some(found) = sqlx::query!(
        "SELECT id, invoice_id FROM payments WHERE provider = $1 AND provider_ref = $2
         ORDER BY status = 'FAILED', id DESC LIMIT 1",
        &*report.provider,
        report.provider_ref
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let invoice = sqlx::query!(
        r#"SELECT (amount - credited)::text AS "amount!", status AS "status: InvoiceStatus"
           FROM invoices WHERE id = $1 FOR UPDATE"#,
        found.invoice_id
    )
    .fetch_one(&mut *conn)
    .await?;
    let payment = sqlx::query!(
        r#"SELECT amount::text AS "amount!", refunded::text AS "refunded!", currency,
                  status AS "status: PaymentStatus", dispute AS "dispute: Dispute"
           FROM payments WHERE id = $1 FOR UPDATE"#,
        found.id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(Locked {
        payment_id: found.id,
        invoice_id: found.invoice_id,
        currency: payment.currency,
        state: PaymentState {
            status: payment.status,
            amount: stored(&payment.amount)?,
            refunded: stored(&payment.refunded)?,
            dispute: payment.dispute,
        },
        invoice_amount: stored(&invoice.amount)?,
        invoice_status: invoice.status,
    }))
}

/// Why a report must not credit our payment, if it must not.
fn mismatch(report: &Report, ours: &Locked) -> Option<&'static str> {
    if report.invoice_id.is_some_and(|id| id != ours.invoice_id) {
        return Some("rejected: names another invoice");
    }
    if report
        .currency
        .as_deref()
        .is_some_and(|c| !c.eq_ignore_ascii_case(&ours.currency))
    {
        return Some("rejected: currency differs");
    }
    let success = report.event == PaymentEvent::Succeeded;
    if success && !report.records_amount && report.amount.is_some_and(|a| a != ours.state.amount) {
        return Some("rejected: amount differs");
    }
    None
}

/// Applies `report` (see the module's comment).
#[tracing::instrument(name = "payments.settle", skip_all,
    fields(provider = %report.provider, event = %report.event_id, kind = %report.event_type))]
pub async fn apply(pool: &PgPool, report: &Report) -> AppResult<Outcome> {
    let mut tx = pool.begin().await?;
    let ours = lock(&mut tx, report).await?;
    let head = ledger::lock_head(&mut tx).await?;
    if ledger::seen(&mut tx, &report.provider, &report.event_id).await? {
        return Ok(Outcome::Duplicate);
    }
    let mut entry = Entry {
        provider: report.provider.to_string(),
        event_id: report.event_id.clone(),
        event_type: report.event_type.clone(),
        invoice_id: ours.as_ref().map(|o| o.invoice_id).or(report.invoice_id),
        payment_id: ours.as_ref().map(|o| o.payment_id),
        amount: report.amount,
        currency: report.currency.as_ref().map(|c| c.to_ascii_uppercase()),
        outcome: String::new(),
    };
    let outcome = match &ours {
        None => {
            tracing::warn!("a payment event for no payment of ours; recorded only");
            entry.outcome = "ignored: no such payment".into();
            Outcome::Ignored
        }
        Some(ours) => match mismatch(report, ours) {
            Some(reason) => {
                tracing::warn!(reason, "a payment event does not match our payment");
                entry.outcome = reason.into();
                Outcome::Rejected
            }
            None => {
                let recorded = report.amount.filter(|_| report.records_amount);
                entry.outcome = change(&mut tx, ours, report.event, recorded).await?;
                Outcome::Applied
            }
        },
    };
    ledger::append(&mut tx, head, &entry).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Moves the payment (recording `amount` as what it paid, if given, when it succeeds) and then
/// its invoice; returns the ledger's description of what changed.
async fn change(
    conn: &mut PgConnection,
    ours: &Locked,
    event: PaymentEvent,
    amount: Option<Minor>,
) -> AppResult<String> {
    let mut next = ours.state.apply(event);
    if let Some(amount) = amount.filter(|_| event == PaymentEvent::Succeeded) {
        next.amount = amount;
    }
    if next != ours.state {
        sqlx::query!(
            r#"UPDATE payments SET status = $2, refunded = $3::text::numeric,
                                   amount = $4::text::numeric, dispute = $5, updated_at = now()
               WHERE id = $1"#,
            ours.payment_id,
            next.status as PaymentStatus,
            next.refunded.to_string(),
            next.amount.to_string(),
            next.dispute as Option<Dispute>,
        )
        .execute(&mut *conn)
        .await?;
    }
    let paid = paid(conn, ours.invoice_id).await?;
    let status = ours.invoice_status.settle(ours.invoice_amount, paid);
    if status != ours.invoice_status {
        sqlx::query!(
            "UPDATE invoices SET status = $2, updated_at = now() WHERE id = $1",
            ours.invoice_id,
            status as InvoiceStatus,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(format!(
        "applied: payment {:?} -> {:?}, invoice {:?} -> {:?}",
        ours.state.status, next.status, ours.invoice_status, status
    ))
}
