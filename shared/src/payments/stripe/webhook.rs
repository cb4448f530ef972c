//! The `stripe-webhook` function: Stripe's event deliveries, verified by Stripe's documented
//! signature scheme, read as reports and applied through [`settle`].

use super::{PROVIDER, Stripe, TOLERANCE_SECS, WEBHOOK_NEED};
use crate::endpoint;
use crate::error::{AppError, AppResult};
use crate::extract::{Json, RawBody};
use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::dto::Received;
use crate::payments::lifecycle::PaymentEvent;
use crate::payments::money::Currency;
use crate::payments::settle::{self, Outcome, Report};
use crate::payments::signature;
use crate::payments::state::PaymentsState;
use axum::extract::State;
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sqlx::PgPool;
use std::borrow::Cow;

/// `stripe-webhook`: Stripe's event deliveries.
pub static STRIPE_WEBHOOK: FunctionSpec = FunctionSpec {
    name: "stripe-webhook",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_stripe,
        &[endpoint!(stripe_webhook)],
    )),
    needs: &[&DATABASE, &WEBHOOK_NEED],
};

#[utoipa::path(post, path = "/stripe-webhook", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature: t=<unix time>,v1=<hex HMAC-SHA256>")),
    request_body(content = String, content_type = "application/json", description = "A Stripe event, exactly as Stripe sent it"),
    responses(
        (status = 200, description = "Verified; applied, or a no-op (a redelivery, or a type this API does not act on)", body = Received),
        (status = 400, description = "No valid signature within 300 seconds, or not a Stripe event"),
    ))]
pub async fn stripe_webhook(
    State(state): State<PaymentsState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<Json<Received>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let outcome = webhook(
        state.db()?,
        state.stripe()?,
        crate::payments::header(&headers, "stripe-signature"),
        &body,
        now,
    )
    .await?;
    Ok(Json(Received {
        outcome: outcome.as_str(),
    }))
}

/// Checks a `Stripe-Signature` header (`t=…,v1=…[,v1=…][,v0=…]`) against the raw body: one
/// `v1` must be the HMAC-SHA256 of `"{t}.{body}"` under the endpoint's secret, and `t` within
/// [`TOLERANCE_SECS`] of `now`. `v0` (test-mode legacy) and unknown schemes are ignored.
pub fn verify(header: &str, body: &[u8], secret: &[u8], now: i64) -> Result<(), &'static str> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) if timestamp.is_none() => timestamp = Some(value),
            Some(("v1", value)) => candidates.push(value),
            _ => {}
        }
    }
    let t = timestamp.ok_or("the Stripe-Signature header has no timestamp")?;
    let when: i64 = t
        .parse()
        .map_err(|_| "the Stripe-Signature timestamp is not a number")?;
    if candidates.is_empty() {
        return Err("the Stripe-Signature header has no v1 signature");
    }
    // `abs_diff`: `now - when` overflows for a timestamp far in the past or future.
    if now.abs_diff(when) > TOLERANCE_SECS.unsigned_abs() {
        return Err("the Stripe-Signature timestamp is outside the tolerance");
    }
    let expected = signature::mac(secret, &[t.as_bytes(), b".", body]);
    if candidates
        .iter()
        .any(|candidate| signature::hex_eq(&expected, candidate))
    {
        Ok(())
    } else {
        Err("no v1 signature matches")
    }
}

/// The parts of a Stripe event this API reads, in one pass over the body (every other field is
/// skipped without being built). Strings borrow from the body unless they hold escapes: only the
/// unknown-type path never copies them.
#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    data: EventData<'a>,
}

#[derive(Debug, Deserialize)]
struct EventData<'a> {
    #[serde(borrow)]
    object: EventObject<'a>,
}

/// A PaymentIntent's, a Charge's or a Dispute's fields this API reads (which is which follows
/// the type).
#[derive(Debug, Deserialize)]
struct EventObject<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    currency: Option<Cow<'a, str>>,
    /// A PaymentIntent's.
    #[serde(default)]
    amount_received: Option<u64>,
    /// A Charge's: its PaymentIntent and its cumulative refunded amount.
    #[serde(default, borrow)]
    payment_intent: Option<Cow<'a, str>>,
    #[serde(default)]
    amount_refunded: Option<u64>,
    /// A Dispute's: the amount disputed and where it stands (`won`, `lost`, `warning_closed`,
    /// … once closed). Its `payment_intent` is the disputed charge's. Many objects have an
    /// `amount`, some negative (a customer balance transaction): anything but a whole
    /// non-negative number is read as none, so an event type this API ignores stays a 200.
    #[serde(default, deserialize_with = "whole_or_none")]
    amount: Option<u64>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    metadata: Metadata<'a>,
}

/// A non-negative integer, or `None` for any other JSON value.
fn whole_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Ok(serde_json::Value::deserialize(deserializer)?.as_u64())
}

#[derive(Debug, Default, Deserialize)]
struct Metadata<'a> {
    #[serde(default, borrow)]
    invoice_id: Option<Cow<'a, str>>,
    /// A Refund's: the refund this API started (`POST /invoices/{id}/refunds`).
    #[serde(default, borrow)]
    refund_id: Option<Cow<'a, str>>,
}

/// What a Refund event says of a refund: its id, ours, and whether it settled (`Some(true)`),
/// failed (`Some(false)`) or is still on its way (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReport {
    pub provider_ref: String,
    pub refund_id: Option<uuid::Uuid>,
    pub settled: Option<bool>,
}

/// A verified event's refund, if it is a Refund event (`refund.created`, `refund.updated`,
/// `refund.failed`).
fn refund_report(body: &[u8]) -> Option<RefundReport> {
    let event: Event = serde_json::from_slice(body).ok()?;
    if !matches!(
        &*event.kind,
        "refund.created" | "refund.updated" | "refund.failed"
    ) {
        return None;
    }
    let object = event.data.object;
    Some(RefundReport {
        provider_ref: object.id?.into_owned(),
        refund_id: object.metadata.refund_id.and_then(|id| id.parse().ok()),
        settled: match object.status.as_deref() {
            Some("succeeded") => Some(true),
            Some("failed" | "canceled") => Some(false),
            _ => None,
        },
    })
}

/// A verified event as a [`Report`], or `None` for a type this API does not act on; `Err` when
/// its object lacks what its type promises. Amounts are read in Stripe's units of the object's
/// currency and reported in ISO 4217 minor units; one that is no whole ISO amount (or of a
/// currency this API does not know) is an `Err`, never rounded.
fn report(event: Event<'_>) -> Result<Option<Report>, &'static str> {
    let object = event.data.object;
    let currency = object.currency.as_deref().map(str::to_ascii_uppercase);
    let minor = |units: u64| {
        let currency = currency.as_deref().ok_or("no currency")?;
        let currency = Currency::parse("currency", currency).map_err(|_| "unknown currency")?;
        super::units::from_stripe(units, &currency).map_err(|_| "not a whole ISO amount")
    };
    let id = || object.id.as_deref().map(str::to_owned).ok_or("no id");
    let (provider_ref, what, amount) = match &*event.kind {
        "payment_intent.succeeded" => {
            let received = object.amount_received.ok_or("no amount_received")?;
            (id()?, PaymentEvent::Succeeded, Some(minor(received)?))
        }
        "payment_intent.payment_failed" | "payment_intent.canceled" => {
            (id()?, PaymentEvent::Failed, None)
        }
        "payment_intent.processing" => (id()?, PaymentEvent::Processing, None),
        "charge.refunded" => {
            let Some(intent) = object.payment_intent else {
                return Ok(None); // a charge without a PaymentIntent is none of ours
            };
            let cumulative = minor(object.amount_refunded.ok_or("no amount_refunded")?)?;
            (
                intent.into_owned(),
                PaymentEvent::Refunded { cumulative },
                Some(cumulative),
            )
        }
        "charge.dispute.created" | "charge.dispute.closed" => {
            let Some(intent) = object.payment_intent else {
                return Ok(None); // a charge without a PaymentIntent is none of ours
            };
            let what = if event.kind == "charge.dispute.created" {
                PaymentEvent::DisputeOpened
            } else {
                match object.status.as_deref() {
                    Some("won" | "warning_closed") => PaymentEvent::DisputeClosed { won: true },
                    Some("lost") => PaymentEvent::DisputeClosed { won: false },
                    status => {
                        // Recorded, and the dispute stays open: nothing is credited on a guess.
                        tracing::warn!(?status, "a closed Stripe dispute with an unknown status");
                        PaymentEvent::Processing
                    }
                }
            };
            let amount = object.amount.map(minor).transpose()?;
            (intent.into_owned(), what, amount)
        }
        _ => return Ok(None),
    };
    Ok(Some(Report {
        provider: PROVIDER.into(),
        event_id: event.id.into_owned(),
        event_type: event.kind.into_owned(),
        provider_ref,
        event: what,
        amount,
        currency: Some(object.currency.ok_or("no currency")?.into_owned()),
        records_amount: false,
        invoice_id: object.metadata.invoice_id.and_then(|id| id.parse().ok()),
    }))
}

/// Verifies and parses a webhook delivery: a bad signature or body is a 400 (Stripe shows it
/// and retries); `None` is a type this API does not act on.
pub fn parse(
    stripe: &Stripe,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> AppResult<Option<Report>> {
    let secret = stripe.webhook_secret()?;
    read_event(header, body, secret.expose_secret().as_bytes(), now)
}

/// [`verify`], then the event as a [`Report`] (`None`: a type this API does not act on); any
/// failure is a 400. What a webhook delivery costs before the database (`scripts/bench-webhooks`).
pub fn read_event(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now: i64,
) -> AppResult<Option<Report>> {
    let header = header
        .ok_or_else(|| AppError::BadRequest("the Stripe-Signature header is missing".into()))?;
    verify(header, body, secret, now).map_err(|reason| AppError::BadRequest(reason.into()))?;
    let event: Event = serde_json::from_slice(body)
        .map_err(|_| AppError::BadRequest("the body is not a Stripe event".into()))?;
    report(event).map_err(|reason| {
        tracing::warn!(reason, "a Stripe event this API cannot read");
        AppError::BadRequest(format!(
            "the event's object is not what its type says ({reason})"
        ))
    })
}

/// The event types this API acts on (what reconciliation lists).
pub const HANDLED: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "refund.created",
    "refund.updated",
    "refund.failed",
];

/// Verifies a delivery and applies its report (a type this API does not act on is a no-op).
#[tracing::instrument(name = "payments.stripe_webhook", skip_all)]
pub async fn webhook(
    pool: &PgPool,
    stripe: &Stripe,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> AppResult<Outcome> {
    let report = parse(stripe, header, body, now)?;
    apply(pool, report, body).await
}

/// An event read from Stripe's own API (`GET /v1/events`, over TLS with our key: no signature
/// to check), applied as its delivery would have been.
pub(crate) async fn replay(pool: &PgPool, body: &[u8]) -> AppResult<Outcome> {
    let event: Event = serde_json::from_slice(body)
        .map_err(|_| AppError::BadGateway("Stripe listed something that is not an event".into()))?;
    let report = report(event).map_err(|reason| {
        AppError::BadGateway(format!(
            "Stripe listed an event this API cannot read ({reason})"
        ))
    })?;
    apply(pool, report, body).await
}

/// Applies a verified event: its payment report through [`settle`], or its refund report.
async fn apply(pool: &PgPool, report: Option<Report>, body: &[u8]) -> AppResult<Outcome> {
    match report {
        Some(report) => settle::apply(pool, &report).await,
        None => match refund_report(body) {
            Some(RefundReport {
                provider_ref,
                refund_id,
                settled: Some(succeeded),
            }) => {
                let moved = crate::payments::billing::refunds::provider_settled(
                    pool,
                    PROVIDER,
                    &provider_ref,
                    refund_id,
                    succeeded,
                )
                .await?;
                // Not moved: a redelivery, a refund already settled, or one made in Stripe's
                // dashboard (whose money `charge.refunded` reports).
                Ok(if moved {
                    Outcome::Applied
                } else {
                    Outcome::Ignored
                })
            }
            _ => {
                tracing::info!("a Stripe event type this API does not act on");
                Ok(Outcome::Ignored)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::money::Minor;

    /// `body`, signed now and read as a delivery: its report.
    fn report_of(body: &str) -> Report {
        let now = 1_700_000_000;
        let t = now.to_string();
        let v1 = signature::sign(b"whsec_test", &[t.as_bytes(), b".", body.as_bytes()]);
        let header = format!("t={t},v1={v1}");
        match read_event(Some(&header), body.as_bytes(), b"whsec_test", now) {
            Ok(Some(report)) => report,
            other => panic!("expected a report, got {other:?}"),
        }
    }

    /// A timestamp at the edge of `i64` is refused as outside the tolerance, without overflowing
    /// (`(now - t).abs()` panicked here in a debug build).
    #[test]
    fn an_extreme_timestamp_is_refused_without_overflow() {
        let body = b"{}";
        for t in [i64::MIN, i64::MAX] {
            let stamp = t.to_string();
            let v1 = signature::sign(b"whsec_test", &[stamp.as_bytes(), b".", body]);
            let header = format!("t={stamp},v1={v1}");
            for now in [1_700_000_000, i64::MAX, i64::MIN, 0] {
                if now == t {
                    continue;
                }
                assert_eq!(
                    verify(&header, body, b"whsec_test", now),
                    Err("the Stripe-Signature timestamp is outside the tolerance"),
                    "t={t}, now={now}"
                );
            }
        }
        let header = "t=-9223372036854775808,v1=00";
        assert_eq!(
            verify(header, body, b"whsec_test", 1_700_000_000),
            Err("the Stripe-Signature timestamp is outside the tolerance")
        );
    }

    /// Fields borrow from the body, but a string with escapes is still read whole and unescaped.
    #[test]
    fn escaped_strings_are_unescaped() {
        let body = r#"{"id":"evt_\u0031","type":"payment_intent.succeeded","data":{"object":
            {"id":"pi_\"q\"","amount_received":500,"currency":"usd","metadata":{"invoice_id":"00000000-0000-0000-0000-000000000001"}}}}"#;
        let report = report_of(body);
        assert_eq!(report.event_id, "evt_1");
        assert_eq!(report.provider_ref, "pi_\"q\"");
        assert_eq!(report.amount, Some(Minor::new(500)));
        assert_eq!(report.currency.as_deref(), Some("usd"));
        assert!(report.invoice_id.is_some());
    }

    /// A dispute names the disputed PaymentIntent, its amount in ISO units, and how it closed.
    #[test]
    fn disputes_report_their_intent_and_outcome() {
        let body = |kind: &str, status: &str| {
            format!(
                r#"{{"id":"evt_d","type":"{kind}","data":{{"object":{{"id":"dp_1","object":"dispute",
                "amount":10000000,"charge":"ch_1","currency":"isk","payment_intent":"pi_1",
                "reason":"fraudulent","status":"{status}","metadata":{{}}}}}}}}"#
            )
        };
        let opened = report_of(&body("charge.dispute.created", "needs_response"));
        assert_eq!(opened.provider_ref, "pi_1");
        assert_eq!(opened.event, PaymentEvent::DisputeOpened);
        assert_eq!(opened.amount, Some(Minor::new(100_000)), "ISK in ISO units");
        assert_eq!(opened.invoice_id, None);
        for (status, event) in [
            ("won", PaymentEvent::DisputeClosed { won: true }),
            ("warning_closed", PaymentEvent::DisputeClosed { won: true }),
            ("lost", PaymentEvent::DisputeClosed { won: false }),
            ("under_review", PaymentEvent::Processing),
        ] {
            let closed = report_of(&body("charge.dispute.closed", status));
            assert_eq!(closed.event, event, "{status}");
            assert_eq!(closed.event_type, "charge.dispute.closed");
        }
    }

    /// Objects of types this API ignores may have any `amount`: still a 200 (`None`).
    #[test]
    fn other_objects_amounts_do_not_matter() {
        let body = r#"{"id":"evt_b","type":"customer_balance_transaction.created","data":{"object":
            {"id":"cbtxn_1","object":"customer_balance_transaction","amount":-500,"currency":"usd"}}}"#;
        let now = 1_700_000_000;
        let t = now.to_string();
        let v1 = signature::sign(b"whsec_test", &[t.as_bytes(), b".", body.as_bytes()]);
        let header = format!("t={t},v1={v1}");
        assert!(matches!(
            read_event(Some(&header), body.as_bytes(), b"whsec_test", now),
            Ok(None)
        ));
    }

    /// A refund names the charge's PaymentIntent and the cumulative refunded amount.
    #[test]
    fn a_refund_reports_its_intent_and_cumulative_amount() {
        let body = r#"{"id":"evt_2","type":"charge.refunded","data":{"object":
            {"id":"ch_1","payment_intent":"pi_1","amount_refunded":120,"currency":"eur"}}}"#;
        let report = report_of(body);
        assert_eq!(report.provider_ref, "pi_1");
        assert_eq!(
            report.event,
            PaymentEvent::Refunded {
                cumulative: Minor::new(120)
            }
        );
    }
}
