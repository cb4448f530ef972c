//! The payments area's own refusals. Each is a conflict with the invoice's or the payment's
//! state (409); it becomes the HTTP problem only by `From<PaymentsError> for AppError`, at the
//! edge.

use super::lifecycle::InvoiceStatus;
use super::money::{Currency, Minor};
use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentsError {
    #[error("only a SENT or OVERDUE invoice can be paid; this one is {0:?}")]
    NotPayable(InvoiceStatus),
    #[error("nothing is left to pay")]
    NothingLeftToPay,
    #[error("only a confirmed payment can be refunded")]
    NotRefundable,
    #[error("this refund ({amount}) exceeds what the payment paid net of its refunds ({left})")]
    RefundExceedsPaid { amount: Minor, left: Minor },
    #[error(
        "the wallet that paid this on-chain payment is not one linked to the invoice's client \
         (any longer): an on-chain refund goes only there"
    )]
    PayerNotLinked,
    #[error(
        "a credit note needs an invoice issued with a number (SENT, OVERDUE or PAID); this one is {0:?}"
    )]
    NotIssued(InvoiceStatus),
    #[error("this credit note ({total}) exceeds what is left to credit on the invoice ({left})")]
    CreditExceedsInvoice { total: Minor, left: Minor },
    #[error("this payment changed while it was recorded; try again")]
    PaymentChanged,
    #[error("a card cannot pay an invoice in {0}")]
    NotACardCurrency(Currency),
    #[error("a card payment of this invoice has succeeded and is being recorded")]
    CardPaymentBeingRecorded,
    #[error("a bitcoin payment of this invoice is being confirmed")]
    BitcoinPaymentBeingConfirmed,
    #[error("this invoice's currency ({currency}) is not taken on chain {chain_id}")]
    NotTakenOnChain { currency: Currency, chain_id: u64 },
    #[error(
        "{0} on-chain payments of this invoice are still being checked; submit another once one \
         of them has settled"
    )]
    TooManyWaiting(i64),
    #[error("this transaction is already another invoice's payment")]
    AnotherInvoicesTransaction,
    #[error(
        "this payout would exceed the daily limit for {currency}: {spent} of {limit} paid out in \
         the last 24 hours"
    )]
    DailyLimit {
        currency: Currency,
        spent: Minor,
        limit: Minor,
    },
}

impl From<PaymentsError> for AppError {
    fn from(err: PaymentsError) -> Self {
        AppError::Conflict(err.to_string())
    }
}
