//! Bitcoin payments through a BTCPay Server store, over its Greenfield API (no maintained Rust
//! crate exists for it; these are three documented JSON calls over the shared HTTP client).
//!
//! A BTCPay invoice is opened per payment of ours, with `orderId` = our invoice's id. Its
//! webhook is verified (`BTCPay-Sig: sha256=<hex HMAC of the body>`), deduplicated on the
//! original delivery id, and never trusted for money: on `InvoiceSettled` the invoice is fetched
//! again and credited only when BTCPay itself says it is Settled for our amount and currency.

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
}

/// The fields of a Greenfield invoice this API reads.
#[derive(Debug, Deserialize)]
struct Invoice {
    id: String,
    status: String,
    amount: String,
    currency: String,
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
    let event = match delivery.kind.as_str() {
        "InvoiceSettled" => PaymentEvent::Succeeded,
        "InvoiceExpired" | "InvoiceInvalid" => PaymentEvent::Failed,
        "InvoiceProcessing" | "InvoiceReceivedPayment" => PaymentEvent::Processing,
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
        event,
        amount: None,
        currency: None,
        records_amount: false,
        invoice_id: None,
    };
    if event == PaymentEvent::Succeeded {
        // Settled: believe BTCPay's API, not the delivery.
        let fetched = btcpay.fetch(&report.provider_ref).await?;
        let currency = Currency::parse("currency", &fetched.currency).ok();
        report.amount = currency
            .as_ref()
            .and_then(|c| Minor::from_decimal(&fetched.amount, c.exponent()));
        report.currency = Some(fetched.currency.clone());
        report.invoice_id = fetched
            .metadata
            .order_id
            .as_deref()
            .and_then(|id| id.parse().ok());
        if fetched.status != "Settled" || report.amount.is_none() {
            // Not written to the ledger, so a redelivery after BTCPay settles still credits.
            tracing::warn!(status = %fetched.status, "a settlement BTCPay does not confirm");
            return Ok(None);
        }
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
