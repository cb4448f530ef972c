//! The two state machines every payment path goes through, once: an invoice's status and a
//! payment's status. Pure functions of (state, event), so every provider (Stripe, BTCPay, a
//! chain) and every order of events gets the same answer, and the property tests below can
//! drive them with random sequences.
//!
//! - A payment only moves forward: PENDING → FAILED → CONFIRMED → REFUNDED (a failed attempt
//!   can still succeed; nothing un-confirms a payment but a refund). A refund's amount is the
//!   provider's cumulative figure, so replays and reordering cannot refund twice.
//! - An invoice moves DRAFT → SENT → PAID, or to VOID. It becomes PAID when its confirmed
//!   payments, net of refunds, cover its amount; only a refund moves it back (PAID → SENT), and
//!   PAID and VOID are otherwise final.

use super::money::Minor;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "invoice_status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceStatus {
    Draft,
    Sent,
    Paid,
    Void,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "payment_status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Pending,
    Confirmed,
    Failed,
    Refunded,
}

/// Why a requested invoice change is refused (409: the invoice's state does not allow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("an invoice's status only moves forward (DRAFT → SENT → PAID, or to VOID)")]
    Backwards,
    #[error("PAID is set by payments, when confirmed payments cover the amount")]
    PaidBySomeone,
    #[error("a PAID or VOID invoice is final")]
    Final,
    #[error("an invoice with confirmed payments cannot be voided; refund them first")]
    HasPayments,
    #[error("amount and currency are fixed once an invoice is SENT")]
    AmountFixed,
}

impl InvoiceStatus {
    /// A status a user (STAFF, ADMIN) asks for. Asking for the current status is a no-op.
    pub fn request(self, target: Self, paid: Minor) -> Result<Self, Refused> {
        use InvoiceStatus::*;
        match (self, target) {
            (from, to) if from == to => Ok(from),
            (Paid | Void, _) => Err(Refused::Final),
            (_, Paid) => Err(Refused::PaidBySomeone),
            (Draft, Sent) => Ok(Sent),
            (Draft | Sent, Void) if paid > Minor::ZERO => Err(Refused::HasPayments),
            (Draft | Sent, Void) => Ok(Void),
            (Sent, Draft) => Err(Refused::Backwards),
            // Every pair is listed above; a new status must be placed deliberately.
            (Draft, Draft) | (Sent, Sent) => Ok(self),
        }
    }

    /// The status after the invoice's payments changed: PAID once `paid` covers `amount`; back
    /// to SENT only when a refund leaves it uncovered. DRAFT and VOID never change here.
    pub fn settle(self, amount: Minor, paid: Minor) -> Self {
        match self {
            Self::Sent if paid >= amount => Self::Paid,
            Self::Paid if paid < amount => Self::Sent,
            other => other,
        }
    }

    /// Whether a payment may be started for it.
    pub fn payable(self) -> bool {
        self == Self::Sent
    }
}

/// What a provider reported about one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEvent {
    /// Seen, not settled (BTCPay "processing", a transaction waiting for confirmations).
    Processing,
    /// Settled for the payment's whole amount.
    Succeeded,
    /// This attempt failed, expired or was cancelled.
    Failed,
    /// The provider's cumulative refunded amount is now this.
    Refunded { cumulative: Minor },
}

/// A payment's state: what the events change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub amount: Minor,
    pub refunded: Minor,
}

impl PaymentState {
    pub fn apply(self, event: PaymentEvent) -> Self {
        use PaymentStatus::*;
        let next = match event {
            PaymentEvent::Processing => self,
            PaymentEvent::Succeeded => match self.status {
                Pending | Failed => Self {
                    status: Confirmed,
                    ..self
                },
                Confirmed | Refunded => self,
            },
            PaymentEvent::Failed => match self.status {
                Pending => Self {
                    status: Failed,
                    ..self
                },
                Failed | Confirmed | Refunded => self,
            },
            PaymentEvent::Refunded { cumulative } => Self {
                refunded: self.refunded.max(cumulative.min(self.amount)),
                ..self
            },
        };
        // A confirmed payment refunded in full is REFUNDED (also when the refund came first).
        if next.status == Confirmed && next.amount > Minor::ZERO && next.refunded >= next.amount {
            Self {
                status: Refunded,
                ..next
            }
        } else {
            next
        }
    }

    /// What this payment contributes to its invoice: its amount net of refunds, once confirmed.
    pub fn credited(self) -> Minor {
        match self.status {
            PaymentStatus::Confirmed | PaymentStatus::Refunded => {
                self.amount.saturating_sub(self.refunded)
            }
            PaymentStatus::Pending | PaymentStatus::Failed => Minor::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A payment's place in the only order it moves in.
    fn rank(status: PaymentStatus) -> u8 {
        match status {
            PaymentStatus::Pending => 0,
            PaymentStatus::Failed => 1,
            PaymentStatus::Confirmed => 2,
            PaymentStatus::Refunded => 3,
        }
    }

    /// Whether `from` → `to` respects the payment order, refunds included.
    fn moves_forward(from: PaymentState, to: PaymentState) -> bool {
        rank(to.status) >= rank(from.status) && to.refunded >= from.refunded
    }

    fn pending(amount: u128) -> PaymentState {
        PaymentState {
            status: PaymentStatus::Pending,
            amount: Minor::new(amount),
            refunded: Minor::ZERO,
        }
    }

    #[test]
    fn failed_after_succeeded_never_unpays() {
        let paid = pending(100).apply(PaymentEvent::Succeeded);
        assert_eq!(paid.apply(PaymentEvent::Failed), paid);
        assert_eq!(paid.apply(PaymentEvent::Processing), paid);
        assert_eq!(paid.credited(), Minor::new(100));
    }

    #[test]
    fn a_failed_attempt_can_still_succeed() {
        let state = pending(100)
            .apply(PaymentEvent::Failed)
            .apply(PaymentEvent::Succeeded);
        assert_eq!(state.status, PaymentStatus::Confirmed);
    }

    #[test]
    fn refunds_are_cumulative_and_capped() {
        let paid = pending(100).apply(PaymentEvent::Succeeded);
        let partial = paid.apply(PaymentEvent::Refunded {
            cumulative: Minor::new(30),
        });
        assert_eq!(partial.status, PaymentStatus::Confirmed);
        assert_eq!(partial.credited(), Minor::new(70));
        // The same refund delivered again, or an older figure arriving late, changes nothing.
        let late = partial.apply(PaymentEvent::Refunded {
            cumulative: Minor::new(10),
        });
        assert_eq!(late, partial);
        let full = partial.apply(PaymentEvent::Refunded {
            cumulative: Minor::new(500),
        });
        assert_eq!(full.status, PaymentStatus::Refunded);
        assert_eq!(full.refunded, Minor::new(100));
        assert_eq!(full.credited(), Minor::ZERO);
    }

    #[test]
    fn a_refund_seen_before_the_success_still_counts() {
        let state = pending(100)
            .apply(PaymentEvent::Refunded {
                cumulative: Minor::new(100),
            })
            .apply(PaymentEvent::Succeeded);
        assert_eq!(state.status, PaymentStatus::Refunded);
        assert_eq!(state.credited(), Minor::ZERO);
    }

    #[test]
    fn users_move_invoices_forward_only() {
        use InvoiceStatus::*;
        let none = Minor::ZERO;
        assert_eq!(Draft.request(Sent, none), Ok(Sent));
        assert_eq!(Draft.request(Void, none), Ok(Void));
        assert_eq!(Sent.request(Void, none), Ok(Void));
        assert_eq!(Sent.request(Sent, none), Ok(Sent));
        assert_eq!(Sent.request(Draft, none), Err(Refused::Backwards));
        assert_eq!(Sent.request(Paid, none), Err(Refused::PaidBySomeone));
        assert_eq!(Paid.request(Void, none), Err(Refused::Final));
        assert_eq!(Void.request(Sent, none), Err(Refused::Final));
        assert_eq!(Paid.request(Paid, none), Ok(Paid));
        assert_eq!(Sent.request(Void, Minor::new(1)), Err(Refused::HasPayments));
    }

    #[test]
    fn settling_pays_covered_invoices_and_only_refunds_unpay() {
        use InvoiceStatus::*;
        let (amount, less, more) = (Minor::new(100), Minor::new(99), Minor::new(150));
        assert_eq!(Sent.settle(amount, less), Sent);
        assert_eq!(Sent.settle(amount, amount), Paid);
        assert_eq!(Sent.settle(amount, more), Paid, "over-payment still pays");
        assert_eq!(Paid.settle(amount, less), Sent);
        assert_eq!(Draft.settle(amount, more), Draft);
        assert_eq!(Void.settle(amount, more), Void);
    }

    fn event() -> impl Strategy<Value = PaymentEvent> {
        prop_oneof![
            Just(PaymentEvent::Processing),
            Just(PaymentEvent::Succeeded),
            Just(PaymentEvent::Failed),
            (0u128..250).prop_map(|c| PaymentEvent::Refunded {
                cumulative: Minor::new(c)
            }),
        ]
    }

    proptest! {
        /// Random sequences (duplicates and any order included) never move a payment
        /// backwards, never credit more than its amount, and replaying any event is a no-op.
        #[test]
        fn payments_never_move_backwards_or_credit_twice(
            amount in 1u128..200,
            events in proptest::collection::vec(event(), 0..40),
        ) {
            let mut state = pending(amount);
            for event in events {
                let next = state.apply(event);
                prop_assert!(moves_forward(state, next), "{state:?} -> {next:?} on {event:?}");
                prop_assert!(next.credited() <= next.amount);
                prop_assert_eq!(next.apply(event), next, "replaying {:?}", event);
                state = next;
            }
        }

        /// An invoice driven by random events on up to three payments only ever goes SENT →
        /// PAID, and back to SENT only on a refund; its credit never exceeds what was paid.
        #[test]
        fn invoices_move_forward_except_through_refunds(
            amount in 1u128..300,
            steps in proptest::collection::vec((0usize..3, event()), 0..60),
        ) {
            let amount = Minor::new(amount);
            let mut payments = [pending(100), pending(150), pending(amount.get())];
            let mut status = InvoiceStatus::Sent;
            for (which, event) in steps {
                payments[which] = payments[which].apply(event);
                let paid = payments.iter().fold(Minor::ZERO, |sum, p| sum.saturating_add(p.credited()));
                let next = status.settle(amount, paid);
                if status == InvoiceStatus::Paid && next == InvoiceStatus::Sent {
                    let refund = matches!(event, PaymentEvent::Refunded { .. });
                    prop_assert!(refund, "only a refund unpays");
                }
                prop_assert_eq!(next == InvoiceStatus::Paid, paid >= amount);
                status = next;
            }
        }
    }
}
