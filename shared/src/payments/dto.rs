//! Request and response bodies of the payments area.

use super::billing::items::LineItem;
use super::lifecycle::InvoiceStatus;
use super::model::date_format;
use super::money::AmountText;
use serde::{Deserialize, Deserializer, Serialize};
use time::Date;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A new invoice (STAFF, ADMIN). It starts as DRAFT; `id`, `status` and the times are the
/// server's, refused as unknown.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceInput {
    /// A project (else 422).
    pub project_id: Uuid,
    /// The total in minor units of `currency`, as an integer string greater than zero. With
    /// `items` it may be left out (it is their total; if given, it must equal it); without
    /// them it is one line, "Services", with no tax.
    #[serde(default)]
    pub amount: Option<AmountText>,
    /// An ISO 4217 code (`USD`, `JPY`) or `BTC`, `ETH`, `USDC`, `USDT`, `DAI`.
    #[schema(pattern = "^[A-Z][A-Z0-9]{2,9}$", example = "USD")]
    pub currency: String,
    /// `YYYY-MM-DD`, or null.
    #[serde(default, with = "date_format::option")]
    #[schema(value_type = Option<Date>)]
    pub due_date: Option<Date>,
    /// 1 to 200 lines. Each line's total is round_half_even(quantity × unit_price); each tax
    /// rate's tax is round_half_even(the sum of its lines × rate / 100).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 200)]
    pub items: Option<Vec<LineItem>>,
    /// Printed on the invoice (up to 2000 characters, no NUL).
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^[^\\x00]*$")]
    pub notes: Option<String>,
}

/// A change to an invoice (STAFF, ADMIN): only the fields given change. `amount`, `currency`,
/// `items` and `notes` only while DRAFT (after that, issue a credit note); `status` only forward
/// (DRAFT → SENT issues it: a number, the PDF, the mail to the client; DRAFT, SENT or OVERDUE →
/// VOID); `due_date: null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceUpdate {
    #[serde(default)]
    pub amount: Option<AmountText>,
    #[serde(default)]
    #[schema(pattern = "^[A-Z][A-Z0-9]{2,9}$", example = "USD")]
    pub currency: Option<String>,
    #[serde(default)]
    pub status: Option<InvoiceStatus>,
    /// Replaces the lines (and `amount` becomes their total).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 200)]
    pub items: Option<Vec<LineItem>>,
    /// null clears them; absent leaves them.
    #[serde(default, deserialize_with = "present_text")]
    #[schema(value_type = Option<String>, max_length = 2000, pattern = "^[^\\x00]*$")]
    pub notes: Option<Option<String>>,
    /// `YYYY-MM-DD`; null clears it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Date>)]
    pub due_date: Option<Option<Date>>,
}

/// A text that is present (null or a string) as `Some`, absent as `None` (the `default`).
fn present_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// A field that is present (null or a date) as `Some`, absent as `None` (the `default`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Date>>, D::Error> {
    date_format::option::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceQuery {
    /// Only this project's invoices.
    pub project_id: Option<Uuid>,
    /// Only invoices in this status.
    pub status: Option<InvoiceStatus>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// What a browser needs to confirm a card payment with Stripe.js.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentIntentCreated {
    /// The PaymentIntent (`pi_…`).
    pub payment_intent_id: String,
    /// For `stripe.confirmPayment` in the payer's browser; never logged.
    pub client_secret: String,
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "12345")]
    pub amount: super::money::Minor,
    pub currency: String,
}

/// Where the payer pays in bitcoin.
#[derive(Debug, Serialize, ToSchema)]
pub struct BtcpayInvoiceCreated {
    pub btcpay_invoice_id: String,
    /// BTCPay's hosted checkout page.
    pub checkout_link: String,
}

/// A webhook's acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// `applied`, `duplicate`, `ignored` (a type or object this API does not act on) or
    /// `rejected` (recorded but not credited: it does not match the invoice).
    #[schema(example = "applied")]
    pub outcome: &'static str,
}

/// A transaction that pays an invoice on a chain. The transfer's amount is read from the chain.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockchainPaymentInput {
    /// A chain that takes payments (else 422).
    #[schema(minimum = 1, maximum = 9007199254740991_u64, example = 1)]
    #[serde(deserialize_with = "chain_id")]
    pub chain_id: u64,
    /// The transaction's hash: `0x` and 64 hex digits.
    #[schema(pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: String,
}

/// An on-chain payout (ADMIN). The same `idempotency_key` always answers the same payout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutInput {
    /// A chain that takes payments (its `PAYMENT_CHAINS` assets are what can be paid out).
    #[schema(minimum = 1, maximum = 9007199254740991_u64, example = 1)]
    #[serde(deserialize_with = "chain_id")]
    pub chain_id: u64,
    /// The recipient's address.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// Minor units of `currency` (wei for ETH), as an integer string greater than zero.
    pub amount: AmountText,
    #[schema(pattern = "^[A-Z][A-Z0-9]{2,9}$", example = "ETH")]
    pub currency: String,
    /// Chosen by the caller, 1 to 255 characters, none a control character (Unicode Cc): a
    /// retry with the same key never sends twice.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub idempotency_key: String,
}

/// The largest chain id taken: 2^53 - 1, as EIP-2294 advises (exact in every JSON reader).
pub const MAX_CHAIN_ID: u64 = (1 << 53) - 1;

/// A chain id as JSON Schema's `integer` allows it: `1` or `1.0`, from 1 to [`MAX_CHAIN_ID`].
fn chain_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let id = match (number.as_u64(), number.as_f64()) {
        (Some(id), _) => Some(id),
        (None, Some(f)) if f.fract() == 0.0 && (1.0..=MAX_CHAIN_ID as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    id.filter(|id| (1..=MAX_CHAIN_ID).contains(id))
        .ok_or_else(|| serde::de::Error::custom("must be a chain id from 1 to 2^53 - 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published schema's pattern refuses exactly the characters the payout route refuses
    /// (`char::is_control`), for every Unicode scalar value: schemathesis found a control
    /// character that the schema allowed and the route refused.
    #[test]
    fn the_idempotency_key_pattern_is_the_routes_rule() -> crate::TestResult {
        let doc = serde_json::to_value(crate::app::openapi())?;
        let key = &doc["components"]["schemas"]["PayoutInput"]["properties"]["idempotency_key"];
        let pattern = key["pattern"].as_str().ok_or("no pattern")?;
        let pattern = regex::Regex::new(pattern)?;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(
                pattern.is_match(&format!("key{c}key")),
                !c.is_control(),
                "U+{:04X}",
                u32::from(c)
            );
        }
        Ok(())
    }

    /// `Payment.status` names DISPUTED, as the contract's rules of money say.
    #[test]
    fn a_payment_may_be_disputed_in_the_schema() -> crate::TestResult {
        let doc = serde_json::to_value(crate::app::openapi())?;
        let statuses = &doc["components"]["schemas"]["PaymentStatus"]["enum"];
        let statuses = statuses.as_array().ok_or("no PaymentStatus enum")?;
        assert!(statuses.iter().any(|s| s == "DISPUTED"), "{statuses:?}");
        Ok(())
    }

    #[test]
    fn a_chain_id_is_any_json_integer_in_range() -> crate::TestResult {
        let parse = |text: &str| {
            serde_json::from_str::<BlockchainPaymentInput>(&format!(
                r#"{{"chain_id": {text}, "tx_hash": "0x"}}"#
            ))
            .map(|input| input.chain_id)
        };
        assert_eq!(parse("31337")?, 31337);
        assert_eq!(parse("37637.0")?, 37637);
        assert_eq!(parse("9007199254740991")?, MAX_CHAIN_ID);
        for bad in [
            "0",
            "-1",
            "1.5",
            "9007199254740992",
            "1e300",
            "\"1\"",
            "null",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
