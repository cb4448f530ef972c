-- The billing reports (GET /reports/revenue and /reports/aging) look rows up by when they
-- happened: an invoice by when it was issued, a credit note by when it was made, a ledger event
-- by when it arrived, and a payment's earlier ledger events (its first confirmation, its
-- previous refund figure). Figures: scripts/bench-reports.
CREATE INDEX invoices_sent ON invoices (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX credit_notes_created ON credit_notes (created_at);
CREATE INDEX payment_events_received ON payment_events (received_at);
CREATE INDEX payment_events_payment ON payment_events (payment_id, seq) WHERE payment_id IS NOT NULL;
