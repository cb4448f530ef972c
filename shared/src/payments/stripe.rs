//! Card payments through Stripe: a PaymentIntent per invoice payment, and the webhook that
//! reports its fate.
//!
//! Why the REST API over the shared HTTP client and not async-stripe: async-stripe 1.0
//! (rc.10, with only `async-stripe-core`'s `payment_intent` feature and rustls-ring) builds here,
//! but its client alone makes a 12.2 MB binary (4.17 MB zipped) even with a narrow response
//! type: its error type deserialises Stripe's whole error object, which embeds the full
//! PaymentIntent, PaymentMethod, SetupIntent and Source types. Added to a function, that breaks
//! the 5 MB zip budget. The two calls used here are small form posts; the webhook's signature
//! scheme is Stripe's documented one (`signature::matches` does the HMAC).

use super::invoices;
use super::lifecycle::PaymentEvent;
use super::money::Currency;
use super::settle::{Outcome, Report};
use super::{signature, stripe_units, upstream};
use crate::config::{ConfigError, Env};
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use crate::tls::LazyHttp;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::PgPool;
use std::borrow::Cow;
use std::time::Duration;
use uuid::Uuid;

pub const PROVIDER: &str = "stripe";
/// Stripe's default: a signature older (or newer) than this is refused.
pub const TOLERANCE_SECS: i64 = 300;

/// What a function that calls Stripe's API needs from its deployment.
pub const API_NEED: crate::function::Need = {
    use crate::function::{FaasValue, Need, SamValue, Var, optional, secret};
    Need {
        name: "stripe-api",
        can_be_unavailable: true,
        vars: &[
            Var {
                name: "STRIPE_SECRET_KEY",
                sam: optional(
                    "StripeSecretKey",
                    true,
                    "Stripe secret API key (sk_live_… or a restricted rk_… key with PaymentIntents write); empty turns card payments off (503)",
                ),
                openfaas: secret("gantry-stripe-secret-key"),
            },
            Var {
                name: "STRIPE_API_BASE",
                sam: SamValue::Unset,
                openfaas: FaasValue::Unset,
            },
        ],
        aws: &[],
    }
};

/// What the function that receives Stripe's webhooks needs from its deployment.
pub const WEBHOOK_NEED: crate::function::Need = {
    use crate::function::{Need, Var, optional, secret};
    Need {
        name: "stripe-webhook",
        can_be_unavailable: true,
        vars: &[Var {
            name: "STRIPE_WEBHOOK_SECRET",
            sam: optional(
                "StripeWebhookSecret",
                true,
                "The signing secret (whsec_…) of the Stripe webhook endpoint that points at /stripe-webhook",
            ),
            openfaas: secret("gantry-stripe-webhook-secret"),
        }],
        aws: &[],
    }
};

/// `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`, `STRIPE_API_BASE`.
pub struct Stripe {
    secret_key: Option<SecretString>,
    webhook_secret: Option<SecretString>,
    api_base: String,
    http: LazyHttp,
}

impl Stripe {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let api_base = env
            .get("STRIPE_API_BASE")
            .unwrap_or_else(|| "https://api.stripe.com".into());
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(ConfigError::invalid(
                "STRIPE_API_BASE",
                "must be an http(s) URL",
            ));
        }
        Ok(Self {
            secret_key: env.get("STRIPE_SECRET_KEY").map(SecretString::from),
            webhook_secret: env.get("STRIPE_WEBHOOK_SECRET").map(SecretString::from),
            api_base: api_base.trim_end_matches('/').to_owned(),
            http: LazyHttp::new(Duration::from_secs(8)),
        })
    }

    fn secret_key(&self) -> AppResult<&SecretString> {
        self.secret_key.as_ref().ok_or_else(|| {
            AppError::Unavailable("Stripe is not configured (STRIPE_SECRET_KEY)".into())
        })
    }

    fn webhook_secret(&self) -> AppResult<&SecretString> {
        self.webhook_secret.as_ref().ok_or_else(|| {
            AppError::Unavailable(
                "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)".into(),
            )
        })
    }

    /// Sends a request with the secret key (see [`upstream::call`]); a refusal names only
    /// Stripe's error code.
    async fn call(&self, request: reqwest::RequestBuilder) -> AppResult<Intent> {
        let request = request.bearer_auth(self.secret_key()?.expose_secret());
        upstream::call("Stripe", request, |_, body| {
            let code = serde_json::from_slice::<StripeError>(body)
                .ok()
                .and_then(|e| e.error.code)
                .unwrap_or_else(|| "unknown".into());
            format!("Stripe refused the request ({code})")
        })
        .await
    }

    /// `amount` is in Stripe's units of `currency` (see [`stripe_units`]).
    async fn create_intent(
        &self,
        invoice_id: Uuid,
        amount: u64,
        currency: &str,
        idempotency_key: &str,
    ) -> AppResult<Intent> {
        let invoice = invoice_id.to_string();
        let form = [
            ("amount", amount.to_string()),
            ("currency", currency.to_ascii_lowercase()),
            ("automatic_payment_methods[enabled]", "true".into()),
            ("description", format!("Invoice {invoice}")),
            ("metadata[invoice_id]", invoice),
        ];
        let request = self
            .http
            .get()
            .post(format!("{}/v1/payment_intents", self.api_base))
            .header("Idempotency-Key", idempotency_key)
            .form(&form);
        self.call(request).await
    }

    async fn retrieve_intent(&self, id: &str) -> AppResult<Intent> {
        let request = self
            .http
            .get()
            .get(format!("{}/v1/payment_intents/{id}", self.api_base));
        self.call(request).await
    }
}

/// The fields of a PaymentIntent this API reads.
#[derive(Debug, Deserialize)]
struct Intent {
    id: String,
    client_secret: Option<String>,
    amount: u64,
    currency: String,
    status: String,
}

impl Intent {
    /// Still payable with its client secret (not succeeded, not cancelled).
    fn open(&self) -> bool {
        matches!(
            self.status.as_str(),
            "requires_payment_method" | "requires_confirmation" | "requires_action" | "processing"
        )
    }
}

#[derive(Deserialize)]
struct StripeError {
    error: StripeErrorBody,
}

#[derive(Deserialize)]
struct StripeErrorBody {
    code: Option<String>,
}

/// `POST /invoices/{id}/create-payment-intent`: the invoice's open PaymentIntent for what is
/// left to pay, made once. Under the invoice's lock: an open intent of ours for the same amount
/// is returned again; otherwise one is created with an `Idempotency-Key` derived from the
/// invoice, the amount and the attempt, so a retry after a lost answer gets the same intent.
/// Stripe is asked in its own units; an amount it cannot charge exactly (123.45 MGA) is a 422.
#[tracing::instrument(name = "payments.create_payment_intent", skip_all)]
pub async fn create_payment_intent(
    pool: &PgPool,
    stripe: &Stripe,
    caller: &AuthUser,
    invoice_id: Uuid,
) -> AppResult<super::dto::PaymentIntentCreated> {
    stripe.secret_key()?;
    let mut tx = pool.begin().await?;
    let payable = invoices::lock_payable(caller, invoice_id, &mut tx).await?;
    if !payable.currency.is_fiat() {
        return Err(AppError::Conflict(format!(
            "a card cannot pay an invoice in {}",
            payable.currency
        )));
    }
    let in_stripe = stripe_units::to_stripe(payable.outstanding, &payable.currency)
        .map_err(|e| AppError::Validation(vec![e.field("amount", &payable.currency)]))?;
    let open = sqlx::query!(
        r#"SELECT provider_ref, amount::text AS "amount!" FROM payments
           WHERE invoice_id = $1 AND provider = $2 AND status = 'PENDING'
           ORDER BY created_at DESC LIMIT 1"#,
        invoice_id,
        PROVIDER
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(open) = open {
        let intent = stripe.retrieve_intent(&open.provider_ref).await?;
        if intent.status == "succeeded" {
            // Paid, and its webhook not yet here: a new intent would let the payer pay twice.
            return Err(AppError::Conflict(
                "a card payment of this invoice has succeeded and is being recorded".into(),
            ));
        }
        // An intent made for another amount (or, before Stripe's units were used, in ISO
        // units) is not reused; its success would not match our payment and never credits.
        if intent.open()
            && open.amount == payable.outstanding.to_string()
            && intent.amount == in_stripe
        {
            return answer(intent, in_stripe, &payable);
        }
    }
    let attempt = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM payments WHERE invoice_id = $1 AND provider = $2"#,
        invoice_id,
        PROVIDER
    )
    .fetch_one(&mut *tx)
    .await?;
    let key = format!(
        "gantry-{invoice_id}-{}-{}-{attempt}",
        payable.outstanding, payable.currency
    );
    let intent = stripe
        .create_intent(invoice_id, in_stripe, payable.currency.code(), &key)
        .await?;
    let created = answer(intent, in_stripe, &payable)?;
    let started = invoices::Started {
        provider: PROVIDER,
        provider_ref: &created.payment_intent_id,
        method: super::model::PaymentMethod::CreditCard,
    };
    invoices::record_started(&mut tx, caller, &payable, &started)
        .await?
        .made_by_provider(&started)?;
    tx.commit().await?;
    Ok(created)
}

/// The intent as the API answers it, once it is checked to be what we asked for (`in_stripe`:
/// the outstanding amount in Stripe's units).
fn answer(
    intent: Intent,
    in_stripe: u64,
    payable: &invoices::Payable,
) -> AppResult<super::dto::PaymentIntentCreated> {
    let same = intent.amount == in_stripe
        && intent
            .currency
            .eq_ignore_ascii_case(payable.currency.code());
    let Some(client_secret) = intent.client_secret.filter(|_| same) else {
        tracing::error!(intent = %intent.id, "Stripe's PaymentIntent is not the one asked for");
        return Err(AppError::BadGateway(
            "Stripe answered with another PaymentIntent".into(),
        ));
    };
    Ok(super::dto::PaymentIntentCreated {
        payment_intent_id: intent.id,
        client_secret,
        amount: payable.outstanding,
        currency: payable.currency.code().to_owned(),
    })
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
        stripe_units::from_stripe(units, &currency).map_err(|_| "not a whole ISO amount")
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

/// `POST /stripe-webhook`.
#[tracing::instrument(name = "payments.stripe_webhook", skip_all)]
pub async fn webhook(
    pool: &PgPool,
    stripe: &Stripe,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> AppResult<Outcome> {
    match parse(stripe, header, body, now)? {
        Some(report) => super::settle::apply(pool, &report).await,
        None => {
            tracing::info!("a Stripe event type this API does not act on");
            Ok(Outcome::Ignored)
        }
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
