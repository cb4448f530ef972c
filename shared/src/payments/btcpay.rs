//! Bitcoin payments through a BTCPay Server store, over its Greenfield API (no maintained Rust
//! crate exists for it; these are four documented JSON calls over the shared HTTP client).
//!
//! A BTCPay invoice is opened per payment of ours, with `orderId` = our invoice's id. Its
//! webhook is verified (`BTCPay-Sig: sha256=<hex HMAC of the body>`), deduplicated on the
//! original delivery id, and never trusted for money: on `InvoiceSettled` the invoice is fetched
//! again and credited only when BTCPay itself says it is Settled for our amount and currency.
//!
//! BTCPay books what it received, so we do too. When the invoice BTCPay answers was paid
//! partly, late or over (`additionalStatus` PaidPartial, PaidLate, PaidOver, or an expiry that
//! says `partiallyPaid`), on `InvoiceSettled`, `InvoicePaymentSettled`, `InvoiceExpired` or
//! `InvoiceInvalid`, its payment methods are fetched too: the payments BTCPay counts as Settled
//! (confirmed), each method's `value`s times its `rate` (the invoice currency per unit), summed
//! and rounded down to the currency's minor unit, are recorded as what the payment paid (as on
//! chain: [`Report::records_amount`]). An under-payment leaves the rest due; an unconfirmed
//! payment counts for nothing until a later delivery finds it Settled. Each delivery reads
//! BTCPay's state as it is then, so a redelivery or one out of order records the same.

use super::invoices;
use super::lifecycle::PaymentEvent;
use super::model::PaymentMethod;
use super::money::{Currency, Minor};
use super::settle::{Outcome, Report};
use super::{signature, upstream};
use crate::config::{ConfigError, Env};
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use crate::tls::LazyHttp;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

pub const PROVIDER: &str = "btcpay";

/// What a function that calls BTCPay Server's Greenfield API needs from its deployment.
pub const API_NEED: crate::function::Need = {
    use crate::function::{Need, Var, optional, secret};
    Need {
        name: "btcpay-api",
        can_be_unavailable: true,
        vars: &[
            Var {
                name: "BTCPAY_URL",
                sam: optional(
                    "BtcpayUrl",
                    false,
                    "BTCPay Server's base URL, e.g. https://btcpay.example.com; empty turns bitcoin payments off (503)",
                ),
                openfaas: secret("gantry-btcpay-url"),
            },
            Var {
                name: "BTCPAY_STORE_ID",
                sam: optional(
                    "BtcpayStoreId",
                    false,
                    "The BTCPay store that invoices are made in",
                ),
                openfaas: secret("gantry-btcpay-store-id"),
            },
            Var {
                name: "BTCPAY_API_KEY",
                sam: optional(
                    "BtcpayApiKey",
                    true,
                    "A Greenfield API key of that store with btcpay.store.cancreateinvoice and btcpay.store.canviewinvoices",
                ),
                openfaas: secret("gantry-btcpay-api-key"),
            },
        ],
        aws: &[],
    }
};

/// What the function that receives BTCPay's webhooks needs besides the API.
pub const WEBHOOK_NEED: crate::function::Need = {
    use crate::function::{Need, Var, optional, secret};
    Need {
        name: "btcpay-webhook",
        can_be_unavailable: true,
        vars: &[Var {
            name: "BTCPAY_WEBHOOK_SECRET",
            sam: optional(
                "BtcpayWebhookSecret",
                true,
                "The secret of the store's webhook that points at /btcpay-webhook",
            ),
            openfaas: secret("gantry-btcpay-webhook-secret"),
        }],
        aws: &[],
    }
};

/// `BTCPAY_URL`, `BTCPAY_API_KEY`, `BTCPAY_STORE_ID`, `BTCPAY_WEBHOOK_SECRET`.
pub struct Btcpay {
    url: Option<String>,
    api_key: Option<SecretString>,
    store_id: Option<String>,
    webhook_secret: Option<SecretString>,
    http: LazyHttp,
}

impl Btcpay {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.get("BTCPAY_URL");
        if url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(ConfigError::invalid("BTCPAY_URL", "must be an http(s) URL"));
        }
        let store_id = env.get("BTCPAY_STORE_ID");
        if store_id
            .as_deref()
            .is_some_and(|s| !s.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(ConfigError::invalid(
                "BTCPAY_STORE_ID",
                "must be a BTCPay store id (letters and digits)",
            ));
        }
        Ok(Self {
            url: url.map(|u| u.trim_end_matches('/').to_owned()),
            api_key: env.get("BTCPAY_API_KEY").map(SecretString::from),
            store_id,
            webhook_secret: env.get("BTCPAY_WEBHOOK_SECRET").map(SecretString::from),
            http: LazyHttp::new(Duration::from_secs(8)),
        })
    }

    fn missing(name: &str) -> AppError {
        AppError::Unavailable(format!("BTCPay Server is not configured ({name})"))
    }

    /// The store's invoices endpoint and the API key, or a 503 naming what is missing.
    fn store(&self) -> AppResult<(String, &SecretString)> {
        let url = self
            .url
            .as_ref()
            .ok_or_else(|| Self::missing("BTCPAY_URL"))?;
        let store = self
            .store_id
            .as_ref()
            .ok_or_else(|| Self::missing("BTCPAY_STORE_ID"))?;
        let key = self
            .api_key
            .as_ref()
            .ok_or_else(|| Self::missing("BTCPAY_API_KEY"))?;
        Ok((format!("{url}/api/v1/stores/{store}/invoices"), key))
    }

    fn webhook_secret(&self) -> AppResult<&SecretString> {
        self.webhook_secret
            .as_ref()
            .ok_or_else(|| Self::missing("BTCPAY_WEBHOOK_SECRET"))
    }

    /// Sends a Greenfield request with the store's API key (see [`upstream::call`]).
    async fn call<T: DeserializeOwned>(
        &self,
        build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> AppResult<T> {
        let (endpoint, key) = self.store()?;
        let request = build(self.http.get(), &endpoint)
            .header("Authorization", format!("token {}", key.expose_secret()));
        upstream::call("BTCPay Server", request, |status, _| {
            format!("BTCPay Server refused the request ({status})")
        })
        .await
    }

    async fn fetch(&self, id: &str) -> AppResult<Invoice> {
        let id = id.to_owned();
        self.call(move |http, endpoint| http.get(format!("{endpoint}/{id}")))
            .await
    }

    /// What invoice `id` has received and BTCPay counts as Settled, in `currency` (the
    /// invoice's): `GET …/invoices/{id}/payment-methods`. `None` if a figure does not parse.
    async fn received(&self, id: &str, currency: &Currency) -> AppResult<Option<Minor>> {
        let id = id.to_owned();
        let methods: Vec<MethodPaid> = self
            .call(move |http, endpoint| http.get(format!("{endpoint}/{id}/payment-methods")))
            .await?;
        Ok(received_in(&methods, currency.exponent()))
    }
}

/// One payment method of a Greenfield invoice: the invoice currency per unit of the method's
/// (`rate`), and the payments made with it.
#[derive(Debug, Deserialize)]
struct MethodPaid {
    #[serde(default)]
    rate: Option<String>,
    #[serde(default)]
    payments: Vec<MethodPayment>,
}

#[derive(Debug, Deserialize)]
struct MethodPayment {
    value: String,
    /// `Invalid`, `Processing` or `Settled`.
    status: String,
}

/// The Settled payments' values times their method's rate, summed, in minor units of a
/// currency of `exponent` decimals, rounded down: never more than was received.
fn received_in(methods: &[MethodPaid], exponent: u8) -> Option<Minor> {
    let mut total = 0u128;
    for method in methods {
        let settled: Vec<&MethodPayment> = method
            .payments
            .iter()
            .filter(|p| p.status == "Settled")
            .collect();
        if settled.is_empty() {
            continue;
        }
        let rate = decimal(method.rate.as_deref()?)?;
        for payment in settled {
            let value = decimal(&payment.value)?;
            total = total.checked_add(product_in_minor(value, rate, exponent)?)?;
        }
    }
    Some(Minor::new(total))
}

/// A non-negative decimal (`"0.00012345"`) as its digits and their scale.
fn decimal(text: &str) -> Option<(u128, u32)> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = || whole.bytes().chain(fraction.bytes());
    if whole.is_empty()
        || digits().count() > super::money::MAX_DIGITS
        || !digits().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let units = digits().try_fold(0u128, |n, b| {
        n.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })?;
    Some((units, u32::try_from(fraction.len()).ok()?))
}

/// `a × b` in units of 10^-`exponent`, rounded down.
fn product_in_minor(a: (u128, u32), b: (u128, u32), exponent: u8) -> Option<u128> {
    let product = a.0.checked_mul(b.0)?;
    let (scale, exponent) = (a.1 + b.1, u32::from(exponent));
    if scale >= exponent {
        // A divisor past u128 leaves nothing of a whole unit.
        Some(
            10u128
                .checked_pow(scale - exponent)
                .map_or(0, |d| product / d),
        )
    } else {
        product.checked_mul(10u128.checked_pow(exponent - scale)?)
    }
}

/// The fields of a Greenfield invoice this API reads.
#[derive(Debug, Deserialize)]
struct Invoice {
    id: String,
    status: String,
    amount: String,
    currency: String,
    /// `None`, `PaidLate`, `PaidPartial`, `Marked`, `Invalid` or `PaidOver`.
    #[serde(default, rename = "additionalStatus")]
    additional_status: Option<String>,
    #[serde(default, rename = "checkoutLink")]
    checkout_link: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default, rename = "orderId")]
    order_id: Option<String>,
}

impl Invoice {
    /// Ours, open, and for exactly `amount` of `currency`.
    fn reusable_for(&self, invoice_id: Uuid, amount: Minor, currency: &Currency) -> bool {
        self.status == "New"
            && self.checkout_link.is_some()
            && self.metadata.order_id.as_deref() == Some(&invoice_id.to_string())
            && self.currency.eq_ignore_ascii_case(currency.code())
            && Minor::from_decimal(&self.amount, currency.exponent()) == Some(amount)
    }
}

/// `POST /invoices/{id}/create-btcpay-invoice`: the open BTCPay invoice for what is left to
/// pay, made once. Under our invoice's lock: the open one we recorded is returned again, then
/// an open one BTCPay holds for our `orderId` (made before an answer was lost), and only then
/// a new one.
#[tracing::instrument(name = "payments.create_btcpay_invoice", skip_all)]
pub async fn create_invoice(
    pool: &PgPool,
    btcpay: &Btcpay,
    caller: &AuthUser,
    invoice_id: Uuid,
) -> AppResult<super::dto::BtcpayInvoiceCreated> {
    btcpay.store()?;
    let mut tx = pool.begin().await?;
    let payable = invoices::lock_payable(caller, invoice_id, &mut tx).await?;
    let (amount, currency) = (payable.outstanding, &payable.currency);
    let recorded = sqlx::query_scalar!(
        r#"SELECT provider_ref FROM payments
           WHERE invoice_id = $1 AND provider = $2 AND status = 'PENDING'
           ORDER BY created_at DESC"#,
        invoice_id,
        PROVIDER
    )
    .fetch_all(&mut *tx)
    .await?;
    for id in recorded {
        let open = btcpay.fetch(&id).await?;
        if matches!(open.status.as_str(), "Processing" | "Settled") {
            // Paid, and its settlement not yet recorded: a new invoice would let the payer pay
            // twice.
            return Err(AppError::Conflict(
                "a bitcoin payment of this invoice is being confirmed".into(),
            ));
        }
        if open.reusable_for(invoice_id, amount, currency) {
            return answer(open);
        }
    }
    let order = invoice_id.to_string();
    let made_before: Vec<Invoice> = btcpay
        .call(|http, endpoint| {
            http.get(endpoint)
                .query(&[("orderId", order.as_str()), ("status", "New")])
        })
        .await?;
    let invoice = match made_before
        .into_iter()
        .find(|i| i.reusable_for(invoice_id, amount, currency))
    {
        Some(invoice) => invoice,
        None => {
            let body = json!({
                "amount": amount.to_decimal(currency.exponent()),
                "currency": currency.code(),
                "metadata": {"orderId": order, "itemDesc": format!("Invoice {order}")},
            });
            let made: Invoice = btcpay
                .call(|http, endpoint| http.post(endpoint).json(&body))
                .await?;
            if !made.reusable_for(invoice_id, amount, currency) {
                tracing::error!(btcpay_invoice = %made.id, "BTCPay made another invoice than asked for");
                return Err(AppError::BadGateway(
                    "BTCPay Server answered with another invoice".into(),
                ));
            }
            made
        }
    };
    let started = invoices::Started {
        provider: PROVIDER,
        provider_ref: &invoice.id,
        method: PaymentMethod::Crypto,
    };
    invoices::record_started(&mut tx, caller, &payable, &started)
        .await?
        .made_by_provider(&started)?;
    tx.commit().await?;
    answer(invoice)
}

fn answer(invoice: Invoice) -> AppResult<super::dto::BtcpayInvoiceCreated> {
    let checkout_link = invoice
        .checkout_link
        .ok_or_else(|| AppError::BadGateway("BTCPay Server gave no checkout link".into()))?;
    Ok(super::dto::BtcpayInvoiceCreated {
        btcpay_invoice_id: invoice.id,
        checkout_link,
    })
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
async fn report(btcpay: &Btcpay, header: Option<&str>, body: &[u8]) -> AppResult<Option<Report>> {
    let secret = btcpay.webhook_secret()?;
    let delivery = read_delivery(header, body, secret.expose_secret().as_bytes())?;
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
    let irregular = delivery.partially_paid
        || matches!(
            fetched.additional_status.as_deref(),
            Some("PaidPartial" | "PaidLate" | "PaidOver")
        );
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

/// `POST /btcpay-webhook`.
#[tracing::instrument(name = "payments.btcpay_webhook", skip_all)]
pub async fn webhook(
    pool: &PgPool,
    btcpay: &Btcpay,
    header: Option<&str>,
    body: &[u8],
) -> AppResult<Outcome> {
    match report(btcpay, header, body).await? {
        Some(report) => super::settle::apply(pool, &report).await,
        None => Ok(Outcome::Ignored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(value: serde_json::Value) -> Vec<MethodPaid> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_settled_payments_count_at_their_methods_rate_rounded_down() {
        let paid = methods(json!([
            {"paymentMethodId": "BTC-CHAIN", "rate": "40000.00", "paymentMethodPaid": "0.00030000",
             "payments": [
                {"value": "0.00020000", "fee": "0.0", "status": "Settled"},
                {"value": "0.00010000", "fee": "0.0", "status": "Processing"},
                {"value": "0.00500000", "fee": "0.0", "status": "Invalid"}]},
            {"paymentMethodId": "BTC-LN", "rate": "40000.01", "paymentMethodPaid": "0.00001",
             "payments": [{"value": "0.00001", "status": "Settled"}]},
            {"paymentMethodId": "LTC-CHAIN", "payments": []},
        ]));
        // 8.00 + 0.4000001 (rounded down to 0.40).
        assert_eq!(received_in(&paid, 2), Some(Minor::new(840)));
        assert_eq!(received_in(&paid, 0), Some(Minor::new(8)));
        assert_eq!(received_in(&[], 2), Some(Minor::ZERO));
    }

    #[test]
    fn a_figure_that_does_not_parse_books_nothing() {
        for (rate, value) in [
            ("", "1"),
            ("1e3", "1"),
            ("-1", "1"),
            ("1", "0x10"),
            ("1", ".5"),
        ] {
            let paid = methods(
                json!([{"rate": rate, "payments": [{"value": value, "status": "Settled"}]}]),
            );
            assert_eq!(received_in(&paid, 2), None, "{rate} × {value}");
        }
        let no_rate = methods(json!([{"payments": [{"value": "1", "status": "Settled"}]}]));
        assert_eq!(received_in(&no_rate, 2), None);
    }

    #[test]
    fn products_scale_both_ways_and_never_overflow() {
        assert_eq!(product_in_minor((15, 0), (1, 0), 2), Some(1500));
        assert_eq!(product_in_minor((1, 40), (1, 40), 2), Some(0));
        assert_eq!(product_in_minor((u128::MAX, 0), (2, 0), 2), None);
        assert_eq!(decimal("0.00012345"), Some((12345, 8)));
        assert_eq!(decimal("12"), Some((12, 0)));
        assert_eq!(decimal("1.2.3"), None);
    }
}
