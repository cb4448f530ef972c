//! The two state machines every payment path goes through, once: an invoice's status and a
//! payment's status. Pure functions of (state, event), so every provider (Stripe, BTCPay, a
//! chain) and every order of events gets the same answer, and the property tests below can
//! drive them with random sequences.
//!
//! - A payment only moves forward: PENDING → FAILED → CONFIRMED → REFUNDED (a failed attempt
//!   can still succeed; nothing un-confirms a payment but a refund or a dispute). A refund's
//!   amount is the provider's cumulative figure, so replays and reordering cannot refund twice.
//! - A dispute (a card chargeback) has its own forward-only state, [`Dispute`]: none → OPEN →
//!   WON or LOST, where a dispute closed before its opening arrives stays closed. A payment
//!   whose success was checked is DISPUTED while its dispute is OPEN or once it is LOST, and
//!   counts for nothing then; a WON dispute makes it CONFIRMED (or REFUNDED) again. A dispute
//!   reported for a payment whose success has not been checked yet is remembered and takes
//!   effect with that success, so a dispute never credits what a success would not.
//!   Every dimension only grows, so any order of the same events ends in the same state.
//! - An invoice moves DRAFT → SENT → PAID, or to VOID; a SENT invoice past its due date is
//!   OVERDUE (set by the `billing-reminders` worker, never by a user), which can still be paid
//!   or voided. It becomes PAID when its confirmed payments, net of refunds, cover what is due
//!   (its amount less its credit notes); only a refund or a dispute moves it back (PAID →
//!   SENT; the worker marks it OVERDUE again if it is late), and PAID and VOID are otherwise
//!   final.

use super::money::Minor;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "invoice_status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceStatus {
    Draft,
    Sent,
    /// SENT and past its due date.
    Overdue,
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
    /// Its charge is disputed (a chargeback open, or lost): it does not count as paid.
    Disputed,
}

/// Where a payment's dispute stands (`payments.dispute`; none: never disputed). It only moves
/// forward: OPEN → WON or LOST, and the first close is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "payment_dispute", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Dispute {
    Open,
    /// Closed in our favour: Stripe's `won`, or an inquiry's `warning_closed`.
    Won,
    Lost,
}

impl Dispute {
    /// Whether the disputed money is (still, or for good) not ours.
    fn withheld(dispute: Option<Self>) -> bool {
        matches!(dispute, Some(Self::Open | Self::Lost))
    }
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
    #[error("OVERDUE is set by the schedule, when a SENT invoice is past its due date")]
    OverdueBySchedule,
    #[error("items, notes and parties are fixed once an invoice is SENT; issue a credit note")]
    ItemsFixed,
}

impl InvoiceStatus {
    /// A status a user (STAFF, ADMIN) asks for. Asking for the current status is a no-op.
    pub fn request(self, target: Self, paid: Minor) -> Result<Self, Refused> {
        use InvoiceStatus::*;
        match (self, target) {
            (from, to) if from == to => Ok(from),
            (Paid | Void, _) => Err(Refused::Final),
            (_, Paid) => Err(Refused::PaidBySomeone),
            (_, Overdue) => Err(Refused::OverdueBySchedule),
            (Draft, Sent) => Ok(Sent),
            (Draft | Sent | Overdue, Void) if paid > Minor::ZERO => Err(Refused::HasPayments),
            (Draft | Sent | Overdue, Void) => Ok(Void),
            (Sent | Overdue, Draft) | (Overdue, Sent) => Err(Refused::Backwards),
            // Every pair is listed above; a new status must be placed deliberately.
            (Draft, Draft) | (Sent, Sent) => Ok(self),
        }
    }

    /// The status after the invoice's payments changed: PAID once `paid` covers `amount`; back
    /// to SENT only when a refund or a dispute leaves it uncovered. DRAFT and VOID never change
    /// here.
    pub fn settle(self, amount: Minor, paid: Minor) -> Self {
        match self {
            Self::Sent | Self::Overdue if paid >= amount => Self::Paid,
            Self::Paid if paid < amount => Self::Sent,
            other => other,
        }
    }

    /// Whether a payment may be started for it.
    pub fn payable(self) -> bool {
        matches!(self, Self::Sent | Self::Overdue)
    }

    /// Whether it has been issued (it has a number, a PDF and frozen items).
    pub fn issued(self) -> bool {
        self != Self::Draft
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
    /// The payer disputed the charge (Stripe's `charge.dispute.created`).
    DisputeOpened,
    /// The dispute closed: `won` (or an inquiry closed without a chargeback), else lost.
    DisputeClosed { won: bool },
}

/// A payment's state: what the events change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub amount: Minor,
    pub refunded: Minor,
    pub dispute: Option<Dispute>,
}

impl PaymentState {
    pub fn apply(self, event: PaymentEvent) -> Self {
        use PaymentStatus::*;
        // DISPUTED is only ever a checked success under a dispute: undo it, move, then redo it.
        let this = match self.status {
            Disputed => Self {
                status: Confirmed,
                ..self
            },
            _ => self,
        };
        let next = match event {
            PaymentEvent::Processing => this,
            PaymentEvent::Succeeded => match this.status {
                Pending | Failed => Self {
                    status: Confirmed,
                    ..this
                },
                Confirmed | Refunded | Disputed => this,
            },
            PaymentEvent::Failed => match this.status {
                Pending => Self {
                    status: Failed,
                    ..this
                },
                Failed | Confirmed | Refunded | Disputed => this,
            },
            PaymentEvent::Refunded { cumulative } => Self {
                refunded: this.refunded.max(cumulative.min(this.amount)),
                ..this
            },
            PaymentEvent::DisputeOpened => Self {
                dispute: this.dispute.or(Some(Dispute::Open)),
                ..this
            },
            PaymentEvent::DisputeClosed { won } => match this.dispute {
                None | Some(Dispute::Open) => Self {
                    dispute: Some(if won { Dispute::Won } else { Dispute::Lost }),
                    ..this
                },
                Some(Dispute::Won | Dispute::Lost) => this,
            },
        };
        // A confirmed payment refunded in full is REFUNDED (also when the refund came first).
        let next = if next.status == Confirmed
            && next.amount > Minor::ZERO
            && next.refunded >= next.amount
        {
            Self {
                status: Refunded,
                ..next
            }
        } else {
            next
        };
        // A checked success whose charge is disputed (or was lost) is DISPUTED.
        if matches!(next.status, Confirmed | Refunded) && Dispute::withheld(next.dispute) {
            Self {
                status: Disputed,
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
            PaymentStatus::Pending | PaymentStatus::Failed | PaymentStatus::Disputed => Minor::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A payment's place in the only order its checked outcome moves in (DISPUTED is a checked
    /// success under a dispute, which has its own order).
    fn rank(state: PaymentState) -> u8 {
        match state.status {
            PaymentStatus::Pending => 0,
            PaymentStatus::Failed => 1,
            PaymentStatus::Confirmed | PaymentStatus::Disputed
                if state.amount == Minor::ZERO || state.refunded < state.amount =>
            {
                2
            }
            PaymentStatus::Confirmed | PaymentStatus::Disputed => 3,
            PaymentStatus::Refunded => 3,
        }
    }

    fn dispute_rank(dispute: Option<Dispute>) -> u8 {
        match dispute {
            None => 0,
            Some(Dispute::Open) => 1,
            Some(Dispute::Won | Dispute::Lost) => 2,
        }
    }

    /// Whether `from` → `to` respects the payment order, refunds and disputes included.
    fn moves_forward(from: PaymentState, to: PaymentState) -> bool {
        rank(to) >= rank(from)
            && to.refunded >= from.refunded
            && dispute_rank(to.dispute) >= dispute_rank(from.dispute)
            && (from.dispute.is_none()
                || from.dispute == Some(Dispute::Open)
                || to.dispute == from.dispute)
    }

    fn pending(amount: u128) -> PaymentState {
        PaymentState {
            status: PaymentStatus::Pending,
            amount: Minor::new(amount),
            refunded: Minor::ZERO,
            dispute: None,
        }
    }

    #[test]
    fn a_dispute_unpays_until_it_is_won() {
        let paid = pending(100).apply(PaymentEvent::Succeeded);
        let disputed = paid.apply(PaymentEvent::DisputeOpened);
        assert_eq!(disputed.status, PaymentStatus::Disputed);
        assert_eq!(disputed.credited(), Minor::ZERO);
        // Redelivered, or a late success or failure: still disputed.
        for event in [
            PaymentEvent::DisputeOpened,
            PaymentEvent::Succeeded,
            PaymentEvent::Failed,
            PaymentEvent::Processing,
        ] {
            assert_eq!(disputed.apply(event), disputed, "{event:?}");
        }
        let won = disputed.apply(PaymentEvent::DisputeClosed { won: true });
        assert_eq!(won.status, PaymentStatus::Confirmed);
        assert_eq!(won.dispute, Some(Dispute::Won));
        assert_eq!(won.credited(), Minor::new(100));
        // The opening delivered again after the close changes nothing.
        assert_eq!(won.apply(PaymentEvent::DisputeOpened), won);
    }

    #[test]
    fn a_lost_dispute_never_counts_again() {
        let lost = pending(100)
            .apply(PaymentEvent::Succeeded)
            .apply(PaymentEvent::DisputeOpened)
            .apply(PaymentEvent::DisputeClosed { won: false });
        assert_eq!(lost.status, PaymentStatus::Disputed);
        assert_eq!(lost.dispute, Some(Dispute::Lost));
        assert_eq!(lost.credited(), Minor::ZERO);
        for event in [
            PaymentEvent::DisputeOpened,
            PaymentEvent::DisputeClosed { won: true },
            PaymentEvent::Succeeded,
            PaymentEvent::Refunded {
                cumulative: Minor::ZERO,
            },
        ] {
            assert_eq!(lost.apply(event), lost, "{event:?}");
        }
    }

    #[test]
    fn a_dispute_closed_before_it_opened_stays_closed() {
        let paid = pending(100).apply(PaymentEvent::Succeeded);
        let won = paid
            .apply(PaymentEvent::DisputeClosed { won: true })
            .apply(PaymentEvent::DisputeOpened);
        assert_eq!(won.status, PaymentStatus::Confirmed);
        assert_eq!(won.credited(), Minor::new(100));
        let lost = paid
            .apply(PaymentEvent::DisputeClosed { won: false })
            .apply(PaymentEvent::DisputeOpened);
        assert_eq!(lost.status, PaymentStatus::Disputed);
        assert_eq!(lost.credited(), Minor::ZERO);
    }

    /// A dispute is no way around the success's checks: until a checked success arrives, a won
    /// dispute credits nothing; an open one holds back the success when it comes.
    #[test]
    fn a_dispute_of_an_unchecked_payment_credits_nothing() {
        let won = pending(100)
            .apply(PaymentEvent::DisputeOpened)
            .apply(PaymentEvent::DisputeClosed { won: true });
        assert_eq!(won.status, PaymentStatus::Pending);
        assert_eq!(won.credited(), Minor::ZERO);
        assert_eq!(
            won.apply(PaymentEvent::Succeeded).status,
            PaymentStatus::Confirmed
        );
        let open = pending(100).apply(PaymentEvent::DisputeOpened);
        assert_eq!(open.status, PaymentStatus::Pending);
        let late = open.apply(PaymentEvent::Succeeded);
        assert_eq!(late.status, PaymentStatus::Disputed);
        assert_eq!(late.credited(), Minor::ZERO);
    }

    #[test]
    fn a_won_dispute_of_a_refunded_payment_is_refunded() {
        let state = pending(100)
            .apply(PaymentEvent::Succeeded)
            .apply(PaymentEvent::Refunded {
                cumulative: Minor::new(100),
            })
            .apply(PaymentEvent::DisputeOpened);
        assert_eq!(state.status, PaymentStatus::Disputed);
        let won = state.apply(PaymentEvent::DisputeClosed { won: true });
        assert_eq!(won.status, PaymentStatus::Refunded);
        assert_eq!(won.credited(), Minor::ZERO);
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
        assert_eq!(Sent.request(Overdue, none), Err(Refused::OverdueBySchedule));
        assert_eq!(Overdue.request(Void, none), Ok(Void));
        assert_eq!(
            Overdue.request(Void, Minor::new(1)),
            Err(Refused::HasPayments)
        );
        assert_eq!(Overdue.request(Sent, none), Err(Refused::Backwards));
        assert_eq!(Overdue.request(Overdue, none), Ok(Overdue));
        assert!(Overdue.payable() && Sent.payable() && !Draft.payable());
    }

    #[test]
    fn settling_pays_covered_invoices_and_only_refunds_unpay() {
        use InvoiceStatus::*;
        let (amount, less, more) = (Minor::new(100), Minor::new(99), Minor::new(150));
        assert_eq!(Sent.settle(amount, less), Sent);
        assert_eq!(Sent.settle(amount, amount), Paid);
        assert_eq!(Overdue.settle(amount, amount), Paid);
        assert_eq!(Overdue.settle(amount, less), Overdue);
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
            Just(PaymentEvent::DisputeOpened),
            any::<bool>().prop_map(|won| PaymentEvent::DisputeClosed { won }),
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

        /// Providers deliver in any order: the same events (with one outcome of the dispute, as
        /// a charge is disputed once) end in the same state whatever their order.
        #[test]
        fn the_order_of_events_does_not_matter(
            amount in 1u128..200,
            won in any::<bool>(),
            (events, shuffled) in proptest::collection::vec(event(), 0..20)
                .prop_flat_map(|events| (Just(events.clone()), Just(events).prop_shuffle())),
        ) {
            let one_outcome = |events: Vec<PaymentEvent>| -> Vec<PaymentEvent> {
                events
                    .into_iter()
                    .map(|e| match e {
                        PaymentEvent::DisputeClosed { .. } => PaymentEvent::DisputeClosed { won },
                        other => other,
                    })
                    .collect()
            };
            let (events, shuffled) = (one_outcome(events), one_outcome(shuffled));
            let run = |events: &[PaymentEvent]| {
                events.iter().fold(pending(amount), |state, e| state.apply(*e))
            };
            prop_assert_eq!(run(&events), run(&shuffled));
        }

        /// An invoice driven by random events on up to three payments only ever goes SENT →
        /// PAID, and back to SENT only on a refund or a dispute; its credit never exceeds what
        /// was paid.
        #[test]
        fn invoices_move_forward_except_through_refunds_and_disputes(
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
                    let unpays = matches!(
                        event,
                        PaymentEvent::Refunded { .. }
                            | PaymentEvent::DisputeOpened
                            | PaymentEvent::DisputeClosed { won: false }
                    );
                    prop_assert!(unpays, "only a refund or a dispute unpays: {:?}", event);
                }
                prop_assert_eq!(next == InvoiceStatus::Paid, paid >= amount);
                status = next;
            }
        }
    }
}
