//! The payments area's records, as the contract shows them.

use super::lifecycle::{InvoiceStatus, PaymentStatus};
use super::money::Minor;
use crate::error::{AppError, AppResult};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "payment_method", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentMethod {
    CreditCard,
    Crypto,
    BlockchainToken,
}

// Dates travel as `YYYY-MM-DD` (RFC 3339 full-date).
time::serde::format_description!(pub(crate) date_format, Date, "[year]-[month]-[day]");

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invoice {
    pub id: Uuid,
    pub project_id: Uuid,
    /// Minor units of `currency`, as an integer string.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "12345")]
    pub amount: Minor,
    #[schema(example = "USD")]
    pub currency: String,
    pub status: InvoiceStatus,
    #[serde(with = "date_format::option")]
    #[schema(value_type = Option<Date>)]
    pub due_date: Option<Date>,
    /// The transaction of the on-chain payment that paid it (confirmed), else null. A submitted
    /// transaction that has not paid yet is only a payment of the invoice (`GET .../payments`).
    pub blockchain_tx_hash: Option<String>,
    /// Confirmed payments net of refunds, in minor units.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "0")]
    pub amount_paid: Minor,
    /// While it is SENT with something left to pay and a chain takes its currency: an EIP-681
    /// URI that a wallet pays in one scan (the chain with the lowest id that takes it; the
    /// receiver, or the token contract's `transfer` to it; the amount left, in base units). Pay
    /// it from a wallet linked to the client's account: transfers from any other are not
    /// credited.
    #[schema(
        example = "ethereum:0x70997970C51812dc3A010C7d01b50e0d17dc79C8@1?value=10000000000000000"
    )]
    pub payment_uri: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An `invoice_view` row as Postgres gives it (amounts as text).
pub(crate) struct InvoiceRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub status: InvoiceStatus,
    pub due_date: Option<Date>,
    pub blockchain_tx_hash: Option<String>,
    pub amount_paid: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An amount the database wrote: any failure to read it back is a bug, not bad input.
pub(crate) fn stored(amount: &str) -> AppResult<Minor> {
    amount
        .parse()
        .map_err(|_| AppError::internal(anyhow::anyhow!("a stored amount is not an integer")))
}

impl TryFrom<InvoiceRow> for Invoice {
    type Error = AppError;
    fn try_from(row: InvoiceRow) -> AppResult<Self> {
        Ok(Self {
            id: row.id,
            project_id: row.project_id,
            amount: stored(&row.amount)?,
            currency: row.currency,
            status: row.status,
            due_date: row.due_date,
            blockchain_tx_hash: row.blockchain_tx_hash,
            amount_paid: stored(&row.amount_paid)?,
            payment_uri: None,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub invoice_id: Uuid,
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "12345")]
    pub amount: Minor,
    pub currency: String,
    pub payment_method: PaymentMethod,
    /// `stripe`, `btcpay`, or a chain.
    pub provider: String,
    /// The provider's reference: a PaymentIntent id, a BTCPay invoice id, a transaction hash.
    pub transaction_id: String,
    pub status: PaymentStatus,
    /// The provider's cumulative refunded amount, in minor units.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "0")]
    pub refunded: Minor,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `{"items": [...]}`: every payment of an invoice (an invoice has few).
#[derive(Debug, Serialize, ToSchema)]
pub struct Payments {
    pub items: Vec<Payment>,
}
