-- On-chain payments: what the chain monitor needs to judge a submitted transaction, fixed when
-- it is submitted (a later change of PAYMENT_CHAINS does not change what an open payment
-- expects). The payment itself is a `payments` row with provider `evm:<chain_id>` and the
-- transaction hash as provider_ref, so one transaction is recorded once, for one invoice, ever.
CREATE TABLE chain_payments (
    payment_id  uuid PRIMARY KEY REFERENCES payments (id) ON DELETE RESTRICT,
    chain_id    bigint NOT NULL CHECK (chain_id > 0),
    tx_hash     text NOT NULL CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    -- The ERC-20 contract paid in; NULL for the chain's native coin.
    token       text CHECK (token ~ '^0x[0-9a-f]{40}$'),
    receiver    text NOT NULL CHECK (receiver ~ '^0x[0-9a-f]{40}$'),
    -- A transaction still unseen on the chain after this is failed.
    watch_until timestamptz NOT NULL,
    CONSTRAINT chain_payments_tx UNIQUE (chain_id, tx_hash)
);
