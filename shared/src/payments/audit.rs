//! The payments area's audited events (what people did; what providers reported goes to the
//! ledger).

use crate::audit::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentsAction {
    InvoiceCreated,
    InvoiceUpdated,
    PaymentStarted,
    PayoutSent,
    InvoiceIssued,
    CreditNoteIssued,
    BillingDetailsChanged,
    InvoiceOverdue,
    ReminderSent,
    RefundStarted,
    RefundChanged,
    DocumentStored,
    ReconciliationFinding,
}

impl Action for PaymentsAction {
    fn name(self) -> &'static str {
        match self {
            Self::InvoiceCreated => "invoice.created",
            Self::InvoiceUpdated => "invoice.updated",
            Self::PaymentStarted => "payment.started",
            Self::PayoutSent => "payout.sent",
            Self::InvoiceIssued => "invoice.issued",
            Self::CreditNoteIssued => "credit_note.issued",
            Self::BillingDetailsChanged => "billing_details.changed",
            Self::InvoiceOverdue => "invoice.overdue",
            Self::ReminderSent => "invoice.reminder_sent",
            Self::RefundStarted => "refund.started",
            Self::RefundChanged => "refund.changed",
            Self::DocumentStored => "document.stored",
            Self::ReconciliationFinding => "reconciliation.finding",
        }
    }
}

/// Writes the audit row of a change the caller made, in the change's transaction.
pub(crate) use crate::audit::caller_did as record;
