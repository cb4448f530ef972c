//! The payments area's records, as the contract shows them.

use super::billing::items::LineItem;
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
    /// Null while DRAFT; assigned when it is issued (SENT), gap-free in its series
    /// (`INVOICE_NUMBER_FORMAT`).
    #[schema(example = "INV-2027-0001")]
    pub number: Option<String>,
    /// The total (subtotal + tax), in minor units of `currency`, as an integer string.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "12345")]
    pub amount: Minor,
    /// The lines (an invoice made with a bare `amount` has one, "Services", with no tax).
    pub items: Vec<LineItem>,
    /// The sum of the line totals, in minor units.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "10374")]
    pub subtotal: Minor,
    /// The sum of the taxes (one per rate, each rounded half to even), in minor units.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "1971")]
    pub tax: Minor,
    /// The sum of its credit notes, in minor units: what is due is `amount - credited`.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "0")]
    pub credited: Minor,
    pub notes: Option<String>,
    /// The CID of its PDF/A-3 (with the e-invoice embedded); null until the `billing-documents`
    /// worker has stored it, seconds after SENT.
    pub pdf_cid: Option<String>,
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

impl Invoice {
    /// What payments must cover: the total less its credit notes.
    pub fn due(&self) -> Minor {
        self.amount.saturating_sub(self.credited)
    }

    /// What is left to pay.
    pub fn outstanding(&self) -> Minor {
        self.due().saturating_sub(self.amount_paid)
    }
}

/// An `invoice_view` row as Postgres gives it (amounts as text).
pub(crate) struct InvoiceRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub number: Option<String>,
    pub amount: String,
    pub items: serde_json::Value,
    pub subtotal: String,
    pub tax: String,
    pub credited: String,
    pub notes: Option<String>,
    pub pdf_cid: Option<String>,
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
        let items = serde_json::from_value(row.items)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored invoice items: {e}")))?;
        Ok(Self {
            id: row.id,
            project_id: row.project_id,
            number: row.number,
            amount: stored(&row.amount)?,
            items,
            subtotal: stored(&row.subtotal)?,
            tax: stored(&row.tax)?,
            credited: stored(&row.credited)?,
            notes: row.notes,
            pdf_cid: row.pdf_cid,
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
