-- Refunds started here (issue I): on the rail the money came in on, never more than a payment
-- paid net of its other refunds. A refund comes with a credit note (credit_notes.refund_id), so
-- the invoice's due amount drops with what is returned.
CREATE TYPE refund_status AS ENUM ('PENDING', 'SUCCEEDED', 'FAILED');
CREATE TABLE refunds (
    id              uuid PRIMARY KEY,
    invoice_id      uuid NOT NULL REFERENCES invoices (id) ON DELETE RESTRICT,
    payment_id      uuid NOT NULL REFERENCES payments (id) ON DELETE RESTRICT,
    amount          numeric(38, 0) NOT NULL CHECK (amount > 0),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z][A-Z0-9]{2,9}$'),
    reason          text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    idempotency_key text NOT NULL UNIQUE CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    status          refund_status NOT NULL DEFAULT 'PENDING',
    provider        text NOT NULL,
    -- The provider's object once it answered: a Stripe refund (re_...), a BTCPay pull payment.
    provider_ref    text CHECK (char_length(provider_ref) BETWEEN 1 AND 255),
    -- Where the client claims a BTCPay refund.
    claim_link      text,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX refunds_provider_ref ON refunds (provider, provider_ref) WHERE provider_ref IS NOT NULL;
CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_invoice ON refunds (invoice_id, id);
ALTER TABLE credit_notes ADD COLUMN refund_id uuid REFERENCES refunds (id) ON DELETE RESTRICT;
