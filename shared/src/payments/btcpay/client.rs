//! BTCPay Server's Greenfield API over the shared HTTP client: the configuration, the calls
//! this API makes, and what a Greenfield invoice has received.

use crate::config::{ConfigError, Env};
use crate::error::{AppError, AppResult};
use crate::payments::money::{Currency, Minor};
use crate::payments::upstream;
use crate::tls::LazyHttp;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use uuid::Uuid;

/// `BTCPAY_URL`, `BTCPAY_API_KEY`, `BTCPAY_STORE_ID`, `BTCPAY_WEBHOOK_SECRET`.
pub struct Btcpay {
    url: Option<String>,
    api_key: Option<SecretString>,
    pub(super) store_id: Option<String>,
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

    /// Whether the store's API is configured (URL, store and key).
    pub(crate) fn configured(&self) -> bool {
        self.store().is_ok()
    }

    pub(super) fn missing(name: &str) -> AppError {
        AppError::Unavailable(format!("BTCPay Server is not configured ({name})"))
    }

    /// The store's invoices endpoint and the API key, or a 503 naming what is missing.
    pub(super) fn store(&self) -> AppResult<(String, &SecretString)> {
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

    pub(super) fn webhook_secret(&self) -> AppResult<&SecretString> {
        self.webhook_secret
            .as_ref()
            .ok_or_else(|| Self::missing("BTCPAY_WEBHOOK_SECRET"))
    }

    /// Sends a Greenfield request with the store's API key (see [`upstream::call`]).
    pub(super) async fn call<T: DeserializeOwned>(
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

    /// Greenfield's invoice refund (`POST …/invoices/{id}/refund`): a pull payment of `amount`
    /// (major units, as a decimal string) of `currency`, which the payer claims at its
    /// `viewLink`.
    pub(crate) async fn refund(
        &self,
        id: &str,
        amount: &str,
        currency: &str,
        name: &str,
        description: &str,
    ) -> AppResult<PullPayment> {
        let body = serde_json::json!({
            "name": name,
            "description": description,
            "refundVariant": "Custom",
            "customAmount": amount,
            "customCurrency": currency,
        });
        let id = id.to_owned();
        self.call(move |http, endpoint| http.post(format!("{endpoint}/{id}/refund")).json(&body))
            .await
    }

    /// A payout of the store (`GET …/stores/{store}/payouts/{id}`).
    pub(super) async fn payout(&self, id: &str) -> AppResult<Payout> {
        let id = id.to_owned();
        self.call(move |http, endpoint| {
            let store = endpoint.trim_end_matches("/invoices");
            http.get(format!("{store}/payouts/{id}"))
        })
        .await
    }

    /// Invoice `id`'s status now (`New`, `Processing`, `Settled`, `Expired` or `Invalid`) and
    /// its additional status (`PaidLate`, `PaidPartial`, `Marked`, ...).
    pub(crate) async fn standing(&self, id: &str) -> AppResult<(String, Option<String>)> {
        let invoice = self.fetch(id).await?;
        Ok((invoice.status, invoice.additional_status))
    }

    pub(super) async fn fetch(&self, id: &str) -> AppResult<Invoice> {
        let id = id.to_owned();
        self.call(move |http, endpoint| http.get(format!("{endpoint}/{id}")))
            .await
    }

    /// What invoice `id` has received and BTCPay counts as Settled, in `currency` (the
    /// invoice's): `GET …/invoices/{id}/payment-methods`. `None` if a figure does not parse.
    pub(super) async fn received(&self, id: &str, currency: &Currency) -> AppResult<Option<Minor>> {
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
pub(super) struct MethodPaid {
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
pub(super) fn received_in(methods: &[MethodPaid], exponent: u8) -> Option<Minor> {
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
        || digits().count() > crate::payments::money::MAX_DIGITS
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
pub(super) struct Invoice {
    pub(super) id: String,
    pub(super) status: String,
    pub(super) amount: String,
    pub(super) currency: String,
    /// `None`, `PaidLate`, `PaidPartial`, `Marked`, `Invalid` or `PaidOver`.
    #[serde(default, rename = "additionalStatus")]
    pub(super) additional_status: Option<String>,
    #[serde(default, rename = "checkoutLink")]
    pub(super) checkout_link: Option<String>,
    #[serde(default)]
    pub(super) metadata: Metadata,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Metadata {
    #[serde(default, rename = "orderId")]
    pub(super) order_id: Option<String>,
}

impl Invoice {
    /// Ours, open, and for exactly `amount` of `currency`.
    pub(super) fn reusable_for(
        &self,
        invoice_id: Uuid,
        amount: Minor,
        currency: &Currency,
    ) -> bool {
        self.status == "New"
            && self.checkout_link.is_some()
            && self.metadata.order_id.as_deref() == Some(&invoice_id.to_string())
            && self.currency.eq_ignore_ascii_case(currency.code())
            && Minor::from_decimal(&self.amount, currency.exponent()) == Some(amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

/// The fields of a Greenfield pull payment this API reads.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PullPayment {
    pub(crate) id: String,
    pub(crate) view_link: String,
}

/// The fields of a Greenfield payout this API reads.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Payout {
    pub(super) pull_payment_id: String,
    /// `AwaitingApproval`, `AwaitingPayment`, `InProgress`, `Completed` or `Cancelled`.
    pub(super) state: String,
}
