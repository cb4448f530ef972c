-- Payments: invoices, the payments made against them, and one append-only ledger of every
-- payment event any provider (Stripe, BTCPay, a chain) reported.
--
-- Amounts are whole minor units of their currency (cents, satoshi, wei) as numeric(38,0): an
-- 18-decimal token overflows bigint at about 9 units, and money is never a float.

CREATE TYPE invoice_status AS ENUM ('DRAFT', 'SENT', 'PAID', 'VOID');
CREATE TYPE payment_method AS ENUM ('CREDIT_CARD', 'CRYPTO', 'BLOCKCHAIN_TOKEN');
CREATE TYPE payment_status AS ENUM ('PENDING', 'CONFIRMED', 'FAILED', 'REFUNDED');

-- An invoice outlives nothing it bills: a project with invoices cannot be deleted (RESTRICT,
-- answered 409), so the books never lose a row.
CREATE TABLE invoices (
    id                 uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    amount             numeric(38, 0) NOT NULL CHECK (amount > 0),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z][A-Z0-9]{2,9}$'),
    status             invoice_status NOT NULL DEFAULT 'DRAFT',
    due_date           date,
    blockchain_tx_hash text CHECK (blockchain_tx_hash ~ '^0x[0-9a-f]{64}$'),
    created_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_project ON invoices (project_id, id);
CREATE INDEX invoices_status ON invoices (status, id);

-- One row per provider object (a Stripe PaymentIntent, a BTCPay invoice, a transaction): the
-- pair (provider, provider_ref) is unique, so one object can never credit twice. `refunded` is
-- the provider's cumulative refunded amount (it only grows).
CREATE TABLE payments (
    id           uuid PRIMARY KEY,
    invoice_id   uuid NOT NULL REFERENCES invoices (id) ON DELETE RESTRICT,
    amount       numeric(38, 0) NOT NULL CHECK (amount >= 0),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z][A-Z0-9]{2,9}$'),
    method       payment_method NOT NULL,
    provider     text NOT NULL CHECK (provider ~ '^[a-z0-9:-]{1,40}$'),
    provider_ref text NOT NULL CHECK (char_length(provider_ref) BETWEEN 1 AND 255),
    status       payment_status NOT NULL DEFAULT 'PENDING',
    refunded     numeric(38, 0) NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_provider_ref UNIQUE (provider, provider_ref)
);
CREATE INDEX payments_invoice ON payments (invoice_id, id);

-- The ledger: every payment event once (unique per provider and event id: a redelivery is a
-- no-op), in order, never updated or deleted. Each row carries the SHA-256 of its own content
-- and of the row before it (`prev_hash`), so any change to history breaks the chain
-- (`gantry ledger verify`). Appends are serialised on ledger_head.
CREATE TABLE payment_events (
    seq         bigint PRIMARY KEY CHECK (seq >= 1),
    provider    text NOT NULL,
    event_id    text NOT NULL CHECK (char_length(event_id) BETWEEN 1 AND 255),
    event_type  text NOT NULL CHECK (char_length(event_type) BETWEEN 1 AND 100),
    invoice_id  uuid,
    payment_id  uuid,
    amount      numeric(38, 0),
    currency    text,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL,
    prev_hash   bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    CONSTRAINT payment_events_provider_event UNIQUE (provider, event_id)
);
CREATE INDEX payment_events_invoice ON payment_events (invoice_id, seq);

CREATE TABLE ledger_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash bytea NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO ledger_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: an UPDATE or DELETE is an error. (Whoever can disable this trigger can change
-- history; the hash chain is what shows it.)
CREATE FUNCTION payment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment_events is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER payment_events_append_only BEFORE UPDATE OR DELETE ON payment_events
    FOR EACH ROW EXECUTE FUNCTION payment_events_append_only();

-- An invoice as the API shows it: amounts as text (exact; the API sends integer strings) and
-- what its confirmed payments, net of refunds, have paid.
CREATE VIEW invoice_view AS
SELECT i.id, i.project_id, i.amount::text AS amount, i.currency, i.status, i.due_date,
       i.blockchain_tx_hash, i.created_at, i.updated_at,
       COALESCE((SELECT sum(p.amount - p.refunded) FROM payments p
                 WHERE p.invoice_id = i.id AND p.status IN ('CONFIRMED', 'REFUNDED')), 0)::text
           AS amount_paid
FROM invoices i;
