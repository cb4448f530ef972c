-- Wallet identities, SIWE nonces, and the abuse-protection state (rate limits, lockouts,
-- idempotency keys) behind the ephemeral-store traits.

-- The chain a wallet identity first proved itself on, for its did:pkh form.
ALTER TABLE identities ADD COLUMN chain_id bigint;
ALTER TABLE identities ADD CONSTRAINT identities_chain_check
    CHECK ((type = 'blockchain_address') = (chain_id IS NOT NULL));

CREATE TABLE auth_nonces (
    nonce       text PRIMARY KEY CHECK (nonce ~ '^[A-Za-z0-9]{16,64}$'),
    -- Optional binding: only this EIP-55 address may use the nonce.
    address     text,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX auth_nonces_expires_idx ON auth_nonces (expires_at);

-- Fixed-window counters, one row per key (e.g. "ip:login:192.0.2.1").
CREATE TABLE rate_limits (
    key           text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL
);

-- Consecutive failures per identifier, and the lock they earned.
CREATE TABLE login_lockouts (
    identifier    text PRIMARY KEY,
    failures      integer NOT NULL,
    locked_until  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status        smallint,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
