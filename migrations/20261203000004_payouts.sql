-- On-chain payouts (ADMIN): each one a transaction signed once and stored before it is broadcast,
-- so a retry, a crash or a concurrent request with the same idempotency key re-sends the very
-- same signed bytes (one transaction hash), never a second transfer.
CREATE TYPE payout_status AS ENUM ('PENDING', 'CONFIRMED', 'FAILED');

CREATE TABLE payouts (
    id              uuid PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    chain_id        bigint NOT NULL CHECK (chain_id > 0),
    sender          text NOT NULL CHECK (sender ~ '^0x[0-9a-f]{40}$'),
    recipient       text NOT NULL CHECK (recipient ~ '^0x[0-9a-f]{40}$'),
    amount          numeric(38, 0) NOT NULL CHECK (amount > 0),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z][A-Z0-9]{2,9}$'),
    -- The ERC-20 contract paid out; NULL for the chain's native coin.
    token           text CHECK (token ~ '^0x[0-9a-f]{40}$'),
    nonce           bigint NOT NULL CHECK (nonce >= 0),
    tx_hash         text NOT NULL UNIQUE CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    raw_tx          bytea NOT NULL,
    status          payout_status NOT NULL DEFAULT 'PENDING',
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payouts_nonce UNIQUE (chain_id, sender, nonce)
);
CREATE INDEX payouts_daily ON payouts (currency, created_at);
