//! The `btcpay-webhook` function: BTCPay Server's deliveries, verified (`BTCPay-Sig`), read as
//! reports confirmed with Greenfield, and applied through [`settle`].

use super::client::Btcpay;
use super::{API_NEED, PROVIDER, WEBHOOK_NEED};
use crate::endpoint;
use crate::error::{AppError, AppResult};
use crate::extract::{Json, RawBody};
use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::dto::Received;
use crate::payments::lifecycle::PaymentEvent;
use crate::payments::money::{Currency, Minor};
use crate::payments::settle::{self, Outcome, Report};
use crate::payments::signature;
use crate::payments::state::PaymentsState;
use axum::extract::State;
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sqlx::PgPool;

/// `btcpay-webhook`: BTCPay Server's webhook deliveries.
pub static BTCPAY_WEBHOOK: FunctionSpec = FunctionSpec {
    name: "btcpay-webhook",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_btcpay,
        &[endpoint!(btcpay_webhook)],
    )),
    needs: &[&DATABASE, &API_NEED, &WEBHOOK_NEED],
};

#[utoipa::path(post, path = "/btcpay-webhook", tag = "payments",
    params(("BTCPay-Sig" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body>")),
    request_body(content = String, content_type = "application/json", description = "A BTCPay Server webhook delivery, exactly as sent"),
    responses(
        (status = 200, description = "Verified; applied, or a no-op (a redelivery, or an event this API does not act on)", body = Received),
        (status = 400, description = "No valid signature, or not a BTCPay delivery"),
        (status = 502, description = "BTCPay Server's invoice could not be read back"),
    ))]
pub async fn btcpay_webhook(
    State(state): State<PaymentsState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<Json<Received>> {
    let outcome = webhook(
        state.db()?,
        state.btcpay()?,
        crate::payments::header(&headers, "btcpay-sig"),
        &body,
    )
    .await?;
    Ok(Json(Received {
        outcome: outcome.as_str(),
    }))
}

/// Checks `BTCPay-Sig: sha256=<hex>` against the raw body.
pub fn verify(header: &str, body: &[u8], secret: &[u8]) -> Result<(), &'static str> {
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or("the BTCPay-Sig header is not sha256=<hex>")?;
    if signature::matches(secret, &[body], hex) {
        Ok(())
    } else {
        Err("the BTCPay-Sig signature does not match")
    }
}

/// The parts of a BTCPay webhook delivery this API reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    delivery_id: String,
    #[serde(default)]
    original_delivery_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    store_id: String,
    #[serde(default)]
    invoice_id: Option<String>,
    /// `InvoiceExpired`: the invoice received some payments before it expired.
    #[serde(default)]
    partially_paid: bool,
    /// A payout event's (`PayoutCreated`, `PayoutApproved`, `PayoutUpdated`): the payout a
    /// refund's claim made.
    #[serde(default)]
    payout_id: Option<String>,
}

/// Reconciliation's view of BTCPay invoice `btcpay_invoice`: what BTCPay's API says of it now,
/// applied as a delivery of the matching event would have been (`None`: still open). The
/// event id is the reconciliation's own, so a late real delivery still dedups on the
/// payment's state machine, which never credits twice.
pub(crate) async fn replay(
    pool: &PgPool,
    btcpay: &Btcpay,
    btcpay_invoice: &str,
) -> AppResult<Option<Outcome>> {
    let fetched = btcpay.fetch(btcpay_invoice).await?;
    let kind = match fetched.status.as_str() {
        "Settled" => "InvoiceSettled",
        "Expired" => "InvoiceExpired",
        "Invalid" => "InvoiceInvalid",
        _ => return Ok(None),
    };
    let delivery = Delivery {
        delivery_id: format!("reconcile:{btcpay_invoice}:{kind}"),
        original_delivery_id: None,
        kind: kind.to_owned(),
        store_id: btcpay.store_id.clone().unwrap_or_default(),
        invoice_id: Some(btcpay_invoice.to_owned()),
        partially_paid: false,
        payout_id: None,
    };
    Ok(Some(match report(btcpay, delivery).await? {
        Some(report) => settle::apply(pool, &report).await?,
        None => Outcome::Ignored,
    }))
}

/// A payout event: a refund's pull payment paid out (`Completed`, as BTCPay's API says, not
/// the delivery) settles the refund once.
async fn payout(pool: &PgPool, btcpay: &Btcpay, delivery: &Delivery) -> AppResult<Outcome> {
    let Some(payout_id) = delivery.payout_id.as_deref() else {
        return Ok(Outcome::Ignored);
    };
    let payout = btcpay.payout(payout_id).await?;
    if payout.state != "Completed" {
        return Ok(Outcome::Ignored);
    }
    let moved = crate::payments::billing::refunds::provider_settled(
        pool,
        PROVIDER,
        &payout.pull_payment_id,
        None,
        true,
    )
    .await?;
    Ok(if moved {
        Outcome::Applied
    } else {
        Outcome::Ignored
    })
}

/// [`verify`], then the delivery's fields; any failure is a 400. What a webhook delivery costs
/// before BTCPay and the database (`scripts/bench-webhooks`).
pub fn read_delivery(header: Option<&str>, body: &[u8], secret: &[u8]) -> AppResult<Delivery> {
    let header =
        header.ok_or_else(|| AppError::BadRequest("the BTCPay-Sig header is missing".into()))?;
    verify(header, body, secret).map_err(|reason| AppError::BadRequest(reason.into()))?;
    serde_json::from_slice(body)
        .map_err(|_| AppError::BadRequest("the body is not a BTCPay webhook delivery".into()))
}

/// Verifies a delivery and turns it into a [`Report`] (`None`: nothing this API acts on). A
/// settlement is confirmed with BTCPay before it can credit.
/// Paid otherwise than as asked (late, partly, over): booked by what BTCPay received, whatever
/// the invoice's status.
fn irregular(additional_status: Option<&str>) -> bool {
    matches!(
        additional_status,
        Some("PaidPartial" | "PaidLate" | "PaidOver")
    )
}

/// Whether an invoice of this status can be one this webhook booked as paid: Settled, or paid
/// irregularly (reconciliation reads closed invoices back against it).
pub(crate) fn counts_as_paid(status: &str, additional_status: Option<&str>) -> bool {
    status == "Settled" || irregular(additional_status)
}

async fn report(btcpay: &Btcpay, delivery: Delivery) -> AppResult<Option<Report>> {
    let Some(btcpay_invoice) = delivery.invoice_id else {
        return Ok(None);
    };
    if btcpay.store_id.as_deref() != Some(delivery.store_id.as_str()) {
        tracing::warn!(store = %delivery.store_id, "a BTCPay delivery for another store");
        return Ok(None);
    }
    // Whether it says money settled (or else that the invoice ended); `None`: in progress.
    let settles = match delivery.kind.as_str() {
        "InvoiceSettled" | "InvoicePaymentSettled" => Some(true),
        "InvoiceExpired" | "InvoiceInvalid" => Some(false),
        "InvoiceProcessing" | "InvoiceReceivedPayment" => None,
        _ => return Ok(None),
    };
    let mut report = Report {
        provider: PROVIDER.into(),
        // A redelivery carries the first delivery's id as originalDeliveryId.
        event_id: delivery
            .original_delivery_id
            .unwrap_or(delivery.delivery_id),
        event_type: delivery.kind,
        provider_ref: btcpay_invoice,
        event: PaymentEvent::Processing,
        amount: None,
        currency: None,
        records_amount: false,
        invoice_id: None,
    };
    let Some(settles) = settles else {
        return Ok(Some(report));
    };
    // Money is settled, or the invoice ended: believe BTCPay's API, not the delivery.
    let fetched = btcpay.fetch(&report.provider_ref).await?;
    let currency = Currency::parse("currency", &fetched.currency).ok();
    report.currency = Some(fetched.currency.clone());
    report.invoice_id = fetched
        .metadata
        .order_id
        .as_deref()
        .and_then(|id| id.parse().ok());
    // Not written to the ledger, so a redelivery once BTCPay confirms still credits.
    let unconfirmed = |why: &str| {
        tracing::warn!(status = %fetched.status, additional = ?fetched.additional_status, why,
            "a BTCPay settlement not booked");
        Ok(None)
    };
    let irregular = delivery.partially_paid || irregular(fetched.additional_status.as_deref());
    if irregular {
        let Some(currency) = &currency else {
            return unconfirmed("the currency is not one of ours");
        };
        let Some(received) = btcpay.received(&report.provider_ref, currency).await? else {
            return unconfirmed("its payment methods do not parse");
        };
        if received > Minor::ZERO {
            report.event = PaymentEvent::Succeeded;
            report.amount = Some(received);
            report.records_amount = true;
            return Ok(Some(report));
        }
        if settles {
            return unconfirmed("none of its payments is settled yet");
        }
    }
    if !settles {
        report.event = PaymentEvent::Failed;
        return Ok(Some(report));
    }
    // A payment of a regular invoice settled: its InvoiceSettled credits it.
    if report.event_type == "InvoicePaymentSettled" {
        return Ok(None);
    }
    report.event = PaymentEvent::Succeeded;
    report.amount = currency
        .as_ref()
        .and_then(|c| Minor::from_decimal(&fetched.amount, c.exponent()));
    if fetched.status != "Settled" || report.amount.is_none() {
        return unconfirmed("BTCPay does not say it is Settled for its amount");
    }
    Ok(Some(report))
}

/// Verifies a delivery and applies its report, confirmed with BTCPay (see [`report`]).
#[tracing::instrument(name = "payments.btcpay_webhook", skip_all)]
pub async fn webhook(
    pool: &PgPool,
    btcpay: &Btcpay,
    header: Option<&str>,
    body: &[u8],
) -> AppResult<Outcome> {
    let secret = btcpay.webhook_secret()?;
    let delivery = read_delivery(header, body, secret.expose_secret().as_bytes())?;
    if delivery.kind.starts_with("Payout") {
        if btcpay.store_id.as_deref() != Some(delivery.store_id.as_str()) {
            tracing::warn!(store = %delivery.store_id, "a BTCPay delivery for another store");
            return Ok(Outcome::Ignored);
        }
        return payout(pool, btcpay, &delivery).await;
    }
    match report(btcpay, delivery).await? {
        Some(report) => settle::apply(pool, &report).await,
        None => Ok(Outcome::Ignored),
    }
}
