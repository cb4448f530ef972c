//! Refunds started here (STAFF, ADMIN), on the rail the money came in on: Stripe
//! (`POST /v1/refunds` with an `Idempotency-Key`), BTCPay Server (Greenfield's invoice refund: a
//! pull payment whose claim link the client is mailed), or the chain (ADMIN only: a payout from
//! the payout account to the wallet that paid, see below).
//!
//! A refund is reserved before the provider is asked: in one transaction that locks the invoice
//! and the payment, it checks what the payment paid net of its other refunds (pending ones
//! included, so concurrent requests never exceed it), records the refund PENDING with its
//! credit note (what is due drops with what is returned: a PAID invoice stays PAID), its ledger
//! row and its audit row. Then the provider is called; its answer moves the refund. A provider
//! that could not be reached leaves the refund PENDING without a reference: the same
//! `idempotency_key` asks again, under the same provider idempotency key, so the money goes back
//! once. A refund that fails releases its amount; its credit note stays (a legal document) and
//! the next refund of the invoice uses it up instead of issuing another.
//!
//! An on-chain payment (`evm:<chain id>`) is paid back by the payout account
//! ([`crate::payments::onchain::payout`]), as a payout is: only by an ADMIN with a fresh second
//! factor (403, 401), to the wallet that paid (still one of the client's), counted against the
//! daily payout limit. Its payout is signed and stored in the reservation's own transaction,
//! under the key `refund:<refund id>`, so the refund is PENDING with the payout's transaction
//! hash as `provider_ref` from the start, and a limit or a signer that refuses leaves nothing
//! behind; the payout is broadcast after the commit (and again by the chain monitor while
//! unseen). The monitor settles the refund with the payout: SUCCEEDED once CONFIRMED, FAILED
//! once FAILED.

use super::credit_notes::issue_credit_note;
use super::items::{self, LineItem};
use crate::domain::Role;
use crate::endpoint;
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::{AuthUser, Json, Path};
use crate::function::needs::{CHAIN_RPC, DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::audit::{self, PaymentsAction};
use crate::payments::error::PaymentsError;
use crate::payments::invoices;
use crate::payments::ledger::{self, Entry};
use crate::payments::lifecycle::PaymentStatus;
use crate::payments::model::stored;
use crate::payments::money::{AmountText, Currency, Minor};
use crate::payments::onchain::{
    self,
    payout::{Onchain, RefundPayout},
};
use crate::payments::state::PaymentsState;
use crate::payments::{btcpay, stripe};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// `refunds`: refunds of an invoice's payments.
pub static REFUNDS: FunctionSpec = FunctionSpec {
    name: "refunds",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::for_refunds,
        &[endpoint!(start_refund), endpoint!(list_refunds)],
    )),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &super::config::NEED,
        &stripe::API_NEED,
        &btcpay::API_NEED,
        &CHAIN_RPC,
        &onchain::NEED,
        &onchain::payout::NEED,
    ],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "refund_status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refund {
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub payment_id: Uuid,
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "500")]
    pub amount: Minor,
    pub currency: String,
    pub status: RefundStatus,
    /// The provider's refund: a Stripe refund (`re_…`), a BTCPay pull payment, the transaction
    /// hash of an on-chain payout; null until the provider answered.
    pub provider_ref: Option<String>,
    /// Where the client claims a BTCPay refund (mailed to them too); null for other rails.
    pub claim_link: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `{"items": [...]}`: an invoice's refunds, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Refunds {
    pub items: Vec<Refund>,
}

/// A refund to start. The same `idempotency_key` always answers the same refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    /// A confirmed payment of the invoice (`GET /invoices/{id}/payments`).
    pub payment_id: Uuid,
    /// Minor units of the payment's currency, at most what it paid net of its refunds.
    pub amount: AmountText,
    /// Why: one line of 1 to 500 characters, printed on the credit note.
    #[schema(schema_with = reason_schema, example = "Workshop cancelled")]
    pub reason: String,
    /// 1 to 255 characters, no control character.
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f]+$")]
    pub idempotency_key: String,
}

fn reason_schema() -> utoipa::openapi::schema::Object {
    crate::domain::line_schema(500).build()
}

struct Row {
    id: Uuid,
    invoice_id: Uuid,
    payment_id: Uuid,
    amount: String,
    currency: String,
    status: RefundStatus,
    provider_ref: Option<String>,
    claim_link: Option<String>,
    created_at: OffsetDateTime,
}

impl TryFrom<Row> for Refund {
    type Error = AppError;
    fn try_from(row: Row) -> AppResult<Self> {
        Ok(Self {
            id: row.id,
            invoice_id: row.invoice_id,
            payment_id: row.payment_id,
            amount: stored(&row.amount)?,
            currency: row.currency,
            status: row.status,
            provider_ref: row.provider_ref,
            claim_link: row.claim_link,
            created_at: row.created_at,
        })
    }
}

async fn rows(conn: &mut PgConnection, invoice_id: Uuid) -> AppResult<Vec<Refund>> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, invoice_id, payment_id, amount::text AS "amount!", currency,
                  status AS "status: RefundStatus", provider_ref, claim_link, created_at
           FROM refunds WHERE invoice_id = $1 ORDER BY id"#,
        invoice_id
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(Refund::try_from)
    .collect()
}

async fn one(conn: &mut PgConnection, id: Uuid) -> AppResult<Refund> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, invoice_id, payment_id, amount::text AS "amount!", currency,
                  status AS "status: RefundStatus", provider_ref, claim_link, created_at
           FROM refunds WHERE id = $1"#,
        id
    )
    .fetch_one(conn)
    .await?
    .try_into()
}

#[utoipa::path(get, path = "/invoices/{id}/refunds", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The invoice's refunds, oldest first", body = Refunds),
        (status = 404, description = crate::payments::NOT_VISIBLE),
    ))]
pub async fn list_refunds(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Refunds>> {
    let pool = state.db()?;
    invoices::visible(pool, &caller, id).await?;
    let mut conn = pool.acquire().await?;
    Ok(Json(Refunds {
        items: rows(&mut conn, id).await?,
    }))
}

#[utoipa::path(post, path = "/invoices/{id}/refunds", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    request_body = RefundInput,
    responses(
        (status = 202, description = "The refund, with its credit note issued: SUCCEEDED, or PENDING until the provider settles it (an on-chain one: until the chain monitor finds its payout final); the same refund for the same idempotency_key", body = Refund),
        (status = 401, description = "A payment made on chain, and no second factor (amr otp or rec) in the last 5 minutes: `WWW-Authenticate: Bearer error=\"insufficient_user_authentication\"` (RFC 9470), problem type urn:gantry:problem:step-up-required; sign in again through POST /login/mfa"),
        (status = 403, description = "A CLIENT; or, for a payment made on chain, not ADMIN (STAFF included: the role is read from the database), or a second factor turned on less than PAYOUT_MFA_MIN_AGE_HOURS ago (type urn:gantry:problem:second-factor-too-new)"),
        (status = 404, description = crate::payments::NOT_VISIBLE),
        (status = 409, description = "The payment is not confirmed, the amount exceeds what it paid net of its refunds, or, on chain, the refund would exceed the currency's daily payout limit or the wallet that paid is no longer linked to the client"),
        (status = 422, description = "payment_id is not a payment of this invoice, or the idempotency_key was used for another refund; on chain, the payment's currency has no daily payout limit (PAYOUT_DAILY_LIMITS) or its chain no longer takes it"),
        (status = 502, description = "The provider refused the refund (it is FAILED)"),
        (status = 503, description = "The provider could not be reached: the refund stays PENDING; send the same request again"),
    ))]
pub async fn start_refund(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<RefundInput>,
) -> AppResult<(StatusCode, Json<Refund>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(start(&state, &caller, id, body).await?),
    ))
}

/// What a refund needs from its payment.
struct Reserved {
    refund: Uuid,
    provider: String,
    provider_ref: String,
    /// Already asked of the provider and answered: nothing more to do.
    answered: bool,
    amount: Minor,
    currency: Currency,
    number: Option<String>,
    reason: String,
}

#[tracing::instrument(name = "payments.start_refund", skip_all)]
pub async fn start(
    state: &PaymentsState,
    caller: &AuthUser,
    invoice_id: Uuid,
    input: RefundInput,
) -> AppResult<Refund> {
    let pool = state.db()?;
    invoices::visible(pool, caller, invoice_id).await?;
    if !matches!(caller.role, Role::Staff | Role::Admin) {
        return Err(AppError::Forbidden);
    }
    let mut errors = Vec::new();
    let amount = crate::payments::money::positive(Some(&input.amount.0), None)
        .map_err(|e| {
            if let AppError::Validation(mut fields) = e {
                errors.append(&mut fields);
            }
        })
        .ok()
        .and_then(|(amount, _)| amount);
    let reason = crate::domain::parse_line("reason", &input.reason, 500)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let key = input.idempotency_key.as_str();
    if key.is_empty() || key.chars().count() > 255 || key.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "idempotency_key",
            "must be 1 to 255 characters, none a control character",
        ));
    }
    let Some(amount) = amount.filter(|_| errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let on = Onchain {
        pool,
        payouts: state.payouts().ok(),
        chains: state.chains(),
        rpc: state.rpc(),
    };
    let onchain = RefundPayout::ready(&on, caller, invoice_id, input.payment_id).await?;
    let mut tx = pool.begin().await?;
    let reserved = reserve(
        &mut tx,
        state,
        caller,
        invoice_id,
        input.payment_id,
        amount,
        &reason,
        key,
    )
    .await?;
    match &onchain {
        // Signed and stored with the reservation, in one commit; then broadcast.
        Some(onchain) if !reserved.answered => {
            let signed = onchain
                .pay(&mut tx, caller, reserved.refund, reserved.amount)
                .await?;
            let answer = Answer {
                status: RefundStatus::Pending,
                provider_ref: signed.payout.tx_hash.clone(),
                claim_link: None,
            };
            record_answer(&mut tx, caller, &reserved, &answer).await?;
            tx.commit().await?;
            onchain.broadcast(&signed).await;
        }
        Some(_) => tx.commit().await?,
        None => {
            tx.commit().await?;
            if !reserved.answered {
                ask_provider(state, caller, &reserved).await?;
            }
        }
    }
    let mut conn = pool.acquire().await?;
    one(&mut conn, reserved.refund).await
}

/// Locks the invoice and the payment, answers a repeated key with its refund, or records a new
/// PENDING refund with its credit note, ledger and audit rows.
#[allow(clippy::too_many_arguments)]
async fn reserve(
    tx: &mut PgConnection,
    state: &PaymentsState,
    caller: &AuthUser,
    invoice_id: Uuid,
    payment_id: Uuid,
    amount: Minor,
    reason: &str,
    key: &str,
) -> AppResult<Reserved> {
    let invoice = sqlx::query!(
        "SELECT number, credited::text AS \"credited!\", amount::text AS \"amount!\"
         FROM invoices WHERE id = $1 FOR UPDATE",
        invoice_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let payment = sqlx::query!(
        r#"SELECT invoice_id, amount::text AS "amount!", refunded::text AS "refunded!", currency,
                  provider, provider_ref, status AS "status: PaymentStatus"
           FROM payments WHERE id = $1 FOR UPDATE"#,
        payment_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .filter(|p| p.invoice_id == invoice_id)
    .ok_or_else(|| {
        AppError::Validation(vec![FieldError::semantic(
            "payment_id",
            "is not a payment of this invoice",
        )])
    })?;
    if let Some(earlier) = sqlx::query!(
        r#"SELECT id, invoice_id, payment_id, amount::text AS "amount!", reason, provider_ref,
                  status AS "status: RefundStatus"
           FROM refunds WHERE idempotency_key = $1"#,
        key
    )
    .fetch_optional(&mut *tx)
    .await?
    {
        let same = earlier.invoice_id == invoice_id
            && earlier.payment_id == payment_id
            && stored(&earlier.amount)? == amount;
        if !same {
            return Err(AppError::Unprocessable(
                "this idempotency_key was used for another refund".into(),
            ));
        }
        return Ok(Reserved {
            refund: earlier.id,
            provider: payment.provider,
            provider_ref: payment.provider_ref,
            answered: earlier.provider_ref.is_some() || earlier.status != RefundStatus::Pending,
            amount,
            currency: currency(&payment.currency)?,
            number: invoice.number,
            reason: earlier.reason,
        });
    }
    if !matches!(
        payment.status,
        PaymentStatus::Confirmed | PaymentStatus::Refunded
    ) {
        return Err(PaymentsError::NotRefundable.into());
    }
    // What the payment has returned or is returning: the provider's cumulative figure (which
    // counts refunds made in its dashboard), or ours if they have not reached it yet, plus ours
    // still pending.
    let ours = sqlx::query!(
        r#"SELECT COALESCE(sum(amount) FILTER (WHERE status = 'SUCCEEDED'), 0)::text AS "succeeded!",
                  COALESCE(sum(amount) FILTER (WHERE status = 'PENDING'), 0)::text AS "pending!"
           FROM refunds WHERE payment_id = $1"#,
        payment_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let returned = stored(&payment.refunded)?
        .max(stored(&ours.succeeded)?)
        .saturating_add(stored(&ours.pending)?);
    let left = stored(&payment.amount)?.saturating_sub(returned);
    if amount > left {
        return Err(PaymentsError::RefundExceedsPaid { amount, left }.into());
    }
    let id = Uuid::now_v7();
    sqlx::query!(
        r#"INSERT INTO refunds (id, invoice_id, payment_id, amount, currency, reason,
                                idempotency_key, provider, created_by)
           VALUES ($1, $2, $3, $4::text::numeric, $5, $6, $7, $8, $9)"#,
        id,
        invoice_id,
        payment_id,
        amount.to_string(),
        payment.currency,
        reason,
        key,
        payment.provider,
        caller.user_id,
    )
    .execute(&mut *tx)
    .await?;
    credit(
        tx,
        state,
        caller,
        invoice_id,
        id,
        reason,
        &invoice.amount,
        &invoice.credited,
    )
    .await?;
    let head = ledger::lock_head(&mut *tx).await?;
    ledger::append(
        &mut *tx,
        head,
        &Entry {
            provider: payment.provider.clone(),
            event_id: format!("refund:{id}:started"),
            event_type: "refund.started".into(),
            invoice_id: Some(invoice_id),
            payment_id: Some(payment_id),
            amount: Some(amount),
            currency: Some(payment.currency.clone()),
            outcome: "pending".into(),
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        PaymentsAction::RefundStarted,
        caller,
        invoice_id,
        json!({"refund_id": id, "payment_id": payment_id, "amount": amount.to_string()}),
    )
    .await?;
    Ok(Reserved {
        refund: id,
        provider: payment.provider,
        provider_ref: payment.provider_ref,
        answered: false,
        amount,
        currency: currency(&payment.currency)?,
        number: invoice.number,
        reason: reason.to_owned(),
    })
}

fn currency(code: &str) -> AppResult<Currency> {
    Currency::parse("currency", code)
        .map_err(|e| AppError::internal(anyhow::anyhow!("a stored currency: {e}")))
}

/// The refund's credit note: what the invoice's refunds (pending or succeeded) now return beyond
/// what the credit notes of earlier refunds already credit (a failed refund's note is used up
/// here), and never more than is left to credit.
#[allow(clippy::too_many_arguments)]
async fn credit(
    tx: &mut PgConnection,
    state: &PaymentsState,
    caller: &AuthUser,
    invoice_id: Uuid,
    refund_id: Uuid,
    reason: &str,
    amount: &str,
    credited: &str,
) -> AppResult<()> {
    let totals = sqlx::query!(
        r#"SELECT
             (SELECT COALESCE(sum(amount), 0) FROM refunds
              WHERE invoice_id = $1 AND status <> 'FAILED')::text AS "refunding!",
             (SELECT COALESCE(sum(total), 0) FROM credit_notes
              WHERE invoice_id = $1 AND refund_id IS NOT NULL)::text AS "noted!""#,
        invoice_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let owed = stored(&totals.refunding)?.saturating_sub(stored(&totals.noted)?);
    let creditable = stored(amount)?.saturating_sub(stored(credited)?);
    let note = owed.min(creditable);
    if note == Minor::ZERO {
        return Ok(());
    }
    let line = LineItem {
        description: format!("Refund: {reason}"),
        quantity: "1".into(),
        unit_price: AmountText(note.to_string()),
        tax_rate: None,
    };
    let totals =
        items::compute(&[line]).map_err(|e| AppError::internal(anyhow::anyhow!("{e:?}")))?;
    issue_credit_note(
        tx,
        state,
        caller,
        invoice_id,
        &totals,
        reason,
        Some(refund_id),
    )
    .await?;
    Ok(())
}

/// Asks the payment's provider for the refund and records its answer.
async fn ask_provider(
    state: &PaymentsState,
    caller: &AuthUser,
    reserved: &Reserved,
) -> AppResult<()> {
    let answer = match reserved.provider.as_str() {
        stripe::PROVIDER => {
            let units = stripe::units::to_stripe(reserved.amount, &reserved.currency)
                .map_err(|e| AppError::internal(anyhow::anyhow!("{e:?}")))?;
            state
                .stripe()?
                .create_refund(
                    &reserved.provider_ref,
                    units,
                    reserved.refund,
                    &format!("gantry-refund-{}", reserved.refund),
                )
                .await
                .map(|r| Answer {
                    status: match r.status.as_str() {
                        "succeeded" => RefundStatus::Succeeded,
                        "failed" | "canceled" => RefundStatus::Failed,
                        _ => RefundStatus::Pending,
                    },
                    provider_ref: r.id,
                    claim_link: None,
                })
        }
        btcpay::PROVIDER => {
            let number = reserved.number.as_deref().unwrap_or("invoice");
            state
                .btcpay()?
                .refund(
                    &reserved.provider_ref,
                    &reserved.amount.to_decimal(reserved.currency.exponent()),
                    reserved.currency.code(),
                    &format!("Refund of {number}"),
                    &reserved.reason,
                )
                .await
                .map(|p| Answer {
                    status: RefundStatus::Pending,
                    provider_ref: p.id,
                    claim_link: Some(p.view_link),
                })
        }
        other => Err(AppError::internal(anyhow::anyhow!(
            "a refund through the unknown provider {other}"
        ))),
    };
    let pool = state.db()?;
    match answer {
        Ok(answer) => {
            let mut tx = pool.begin().await?;
            record_answer(&mut tx, caller, reserved, &answer).await?;
            tx.commit().await?;
            Ok(())
        }
        // Refused for good: FAILED, its amount released; the caller sees the refusal.
        Err(AppError::BadGateway(why)) => {
            let mut tx = pool.begin().await?;
            let failed = Answer {
                status: RefundStatus::Failed,
                provider_ref: String::new(),
                claim_link: None,
            };
            record_answer(&mut tx, caller, reserved, &failed).await?;
            tx.commit().await?;
            Err(AppError::BadGateway(why))
        }
        // Unreachable: PENDING without a reference, for the same request to ask again.
        Err(other) => Err(other),
    }
}

struct Answer {
    status: RefundStatus,
    provider_ref: String,
    claim_link: Option<String>,
}

/// Records the provider's first answer (and mails a claim link to the client).
async fn record_answer(
    tx: &mut PgConnection,
    caller: &AuthUser,
    reserved: &Reserved,
    answer: &Answer,
) -> AppResult<()> {
    let provider_ref = (!answer.provider_ref.is_empty()).then_some(answer.provider_ref.as_str());
    let changed = sqlx::query!(
        r#"UPDATE refunds SET status = $2, provider_ref = $3, claim_link = $4, updated_at = now()
           WHERE id = $1 AND status = 'PENDING' AND provider_ref IS NULL
           RETURNING invoice_id, payment_id"#,
        reserved.refund,
        answer.status as RefundStatus,
        provider_ref,
        answer.claim_link,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = changed else { return Ok(()) };
    audit::record(
        &mut *tx,
        PaymentsAction::RefundChanged,
        caller,
        row.invoice_id,
        json!({"refund_id": reserved.refund, "status": answer.status, "provider_ref": provider_ref}),
    )
    .await?;
    if answer.status != RefundStatus::Pending {
        settled_in_ledger(tx, reserved.refund, answer.status).await?;
    }
    if let Some(link) = &answer.claim_link {
        mail_claim_link(tx, row.invoice_id, reserved, link).await?;
    }
    Ok(())
}

/// The ledger row of a refund's end (once: its event id is the refund's).
async fn settled_in_ledger(
    tx: &mut PgConnection,
    refund: Uuid,
    status: RefundStatus,
) -> AppResult<()> {
    let row = sqlx::query!(
        r#"SELECT invoice_id, payment_id, amount::text AS "amount!", currency, provider
           FROM refunds WHERE id = $1"#,
        refund
    )
    .fetch_one(&mut *tx)
    .await?;
    let head = ledger::lock_head(&mut *tx).await?;
    let (suffix, outcome) = match status {
        RefundStatus::Succeeded => ("succeeded", "applied"),
        _ => ("failed", "failed"),
    };
    let event_id = format!("refund:{refund}:{suffix}");
    if ledger::seen(&mut *tx, &row.provider, &event_id).await? {
        return Ok(());
    }
    // Stripe reports a payment's cumulative refunds itself (`charge.refunded`); BTCPay and the
    // chains do not, so a refund of theirs that succeeded is counted on its payment here.
    if status == RefundStatus::Succeeded && row.provider != stripe::PROVIDER {
        sqlx::query!(
            "UPDATE payments SET refunded = LEAST(amount, refunded + $2::text::numeric),
                    updated_at = now()
             WHERE id = $1",
            row.payment_id,
            row.amount,
        )
        .execute(&mut *tx)
        .await?;
    }
    ledger::append(
        &mut *tx,
        head,
        &Entry {
            provider: row.provider,
            event_id,
            event_type: format!("refund.{suffix}"),
            invoice_id: Some(row.invoice_id),
            payment_id: Some(row.payment_id),
            amount: Some(stored(&row.amount)?),
            currency: Some(row.currency),
            outcome: outcome.into(),
        },
    )
    .await?;
    Ok(())
}

async fn mail_claim_link(
    tx: &mut PgConnection,
    invoice_id: Uuid,
    reserved: &Reserved,
    link: &str,
) -> AppResult<()> {
    let project = sqlx::query_scalar!("SELECT project_id FROM invoices WHERE id = $1", invoice_id)
        .fetch_one(&mut *tx)
        .await?;
    let Some(to) = super::parties::mail_to(&mut *tx, project).await? else {
        return Ok(());
    };
    let number = reserved.number.as_deref().unwrap_or("your invoice");
    let amount = format!(
        "{} {}",
        reserved.amount.to_decimal(reserved.currency.exponent()),
        reserved.currency.code()
    );
    let text = format!(
        "A refund of {amount} for {number} is ready for you.\nClaim it here, with the address it should go to: {link}\n"
    );
    let html = format!(
        "<p>A refund of {amount} for {number} is ready for you.</p><p><a href=\"{link}\">Claim it</a> with the address it should go to.</p>"
    );
    crate::mail::send(
        tx,
        &crate::mail::Mail {
            to: &to,
            subject: &format!("Your refund for {number}"),
            text: &text,
            html: &html,
        },
    )
    .await?;
    Ok(())
}

/// A provider's verified report that its refund `provider_ref` (ours `refund_id`, when the
/// provider carries our id back) settled (`true`) or failed (`false`): moves a PENDING refund
/// once, with its ledger and audit rows; a refund this API did not start (a dashboard refund),
/// one already settled, or a redelivery is a no-op (`false`). A report that arrives before the
/// provider's answer to our request was recorded finds the refund by our id and records the
/// reference too.
pub(crate) async fn provider_settled(
    pool: &sqlx::PgPool,
    provider: &str,
    provider_ref: &str,
    refund_id: Option<Uuid>,
    succeeded: bool,
) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    let moved = settled_in(&mut tx, provider, provider_ref, refund_id, succeeded).await?;
    tx.commit().await?;
    Ok(moved)
}

/// [`provider_settled`] inside the caller's transaction (the chain monitor settles a refund
/// with the payout that paid it back).
pub(crate) async fn settled_in(
    tx: &mut PgConnection,
    provider: &str,
    provider_ref: &str,
    refund_id: Option<Uuid>,
    succeeded: bool,
) -> AppResult<bool> {
    let status = if succeeded {
        RefundStatus::Succeeded
    } else {
        RefundStatus::Failed
    };
    let moved = sqlx::query_scalar!(
        r#"UPDATE refunds SET status = $3, provider_ref = COALESCE(provider_ref, $2),
                  updated_at = now()
           WHERE provider = $1 AND status = 'PENDING'
             AND (provider_ref = $2 OR (provider_ref IS NULL AND id = $4))
           RETURNING id"#,
        provider,
        provider_ref,
        status as RefundStatus,
        refund_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = moved else { return Ok(false) };
    settled_in_ledger(&mut *tx, id, status).await?;
    crate::audit::record(
        &mut *tx,
        crate::audit::Entry {
            action: PaymentsAction::RefundChanged,
            actor_id: None,
            subject_id: Some(id),
            details: json!({"status": status, "provider": provider, "provider_ref": provider_ref}),
        },
    )
    .await?;
    Ok(true)
}
