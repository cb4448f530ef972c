//! Stripe's REST API over the shared HTTP client: the configuration and the two PaymentIntent
//! calls this API makes.

use crate::config::{ConfigError, Env};
use crate::error::{AppError, AppResult};
use crate::payments::upstream;
use crate::tls::LazyHttp;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

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

    pub(crate) fn secret_key(&self) -> AppResult<&SecretString> {
        self.secret_key.as_ref().ok_or_else(|| {
            AppError::Unavailable("Stripe is not configured (STRIPE_SECRET_KEY)".into())
        })
    }

    pub(super) fn webhook_secret(&self) -> AppResult<&SecretString> {
        self.webhook_secret.as_ref().ok_or_else(|| {
            AppError::Unavailable(
                "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)".into(),
            )
        })
    }

    /// Sends a request with the secret key (see [`upstream::call`]); a refusal names only
    /// Stripe's error code.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> AppResult<T> {
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

    /// `amount` is in Stripe's units of `currency` (see [`super::units`]).
    pub(super) async fn create_intent(
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

    /// `POST /v1/refunds` of `amount` (Stripe's units) of PaymentIntent `intent`, under
    /// `idempotency_key` (a retry answers the same refund, never a second one).
    pub(crate) async fn create_refund(
        &self,
        intent: &str,
        amount: u64,
        refund_id: Uuid,
        idempotency_key: &str,
    ) -> AppResult<StripeRefund> {
        let form = [
            ("payment_intent", intent.to_owned()),
            ("amount", amount.to_string()),
            ("reason", "requested_by_customer".to_owned()),
            ("metadata[refund_id]", refund_id.to_string()),
        ];
        let request = self
            .http
            .get()
            .post(format!("{}/v1/refunds", self.api_base))
            .header("Idempotency-Key", idempotency_key)
            .form(&form);
        self.call(request).await
    }

    /// One page of `GET /v1/events` (newest first): events of `types` created at or after
    /// `since` (unix seconds), after event `after` when paging on.
    pub(crate) async fn list_events(
        &self,
        types: &[&str],
        since: i64,
        after: Option<&str>,
    ) -> AppResult<EventPage> {
        let mut query: Vec<(&str, String)> =
            vec![("limit", "100".into()), ("created[gte]", since.to_string())];
        query.extend(types.iter().map(|t| ("types[]", (*t).to_owned())));
        if let Some(after) = after {
            query.push(("starting_after", after.to_owned()));
        }
        let request = self
            .http
            .get()
            .get(format!("{}/v1/events", self.api_base))
            .query(&query);
        self.call(request).await
    }

    /// `GET /v1/refunds/{id}`: a refund as Stripe has it now.
    pub(crate) async fn retrieve_refund(&self, id: &str) -> AppResult<StripeRefund> {
        let request = self
            .http
            .get()
            .get(format!("{}/v1/refunds/{id}", self.api_base));
        self.call(request).await
    }

    pub(crate) async fn retrieve_intent(&self, id: &str) -> AppResult<Intent> {
        let request = self
            .http
            .get()
            .get(format!("{}/v1/payment_intents/{id}", self.api_base));
        self.call(request).await
    }
}

/// The fields of a PaymentIntent this API reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Intent {
    pub(crate) id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) amount: u64,
    /// What it collected (reconciliation compares it with the payment we recorded).
    #[serde(default)]
    pub(crate) amount_received: u64,
    pub(crate) currency: String,
    pub(crate) status: String,
}

/// A page of Stripe's event list: the events as Stripe sent them (read again as webhook
/// bodies), and whether older ones follow.
#[derive(Debug, Deserialize)]
pub(crate) struct EventPage {
    pub(crate) data: Vec<serde_json::Value>,
    pub(crate) has_more: bool,
}

/// The fields of a Stripe Refund this API reads.
#[derive(Debug, Deserialize)]
pub(crate) struct StripeRefund {
    pub(crate) id: String,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub(crate) status: String,
    /// In Stripe's units of `currency` (reconciliation compares it with ours).
    #[serde(default)]
    pub(crate) amount: u64,
    #[serde(default)]
    pub(crate) currency: String,
}

impl Intent {
    /// Still payable with its client secret (not succeeded, not cancelled).
    pub(super) fn open(&self) -> bool {
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
