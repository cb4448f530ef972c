-- Reconciliation (issue I): what a run found when it compared our books with Stripe, BTCPay and
-- the chains, where each provider's listing left off, and the ledger head anchored outside the
-- database at each run.
CREATE TABLE reconciliation_findings (
    id           uuid PRIMARY KEY,
    run_id       uuid NOT NULL,
    provider     text NOT NULL CHECK (char_length(provider) BETWEEN 1 AND 40),
    provider_ref text NOT NULL CHECK (char_length(provider_ref) BETWEEN 1 AND 255),
    kind         text NOT NULL CHECK (kind IN ('missing', 'extra', 'amount', 'status')),
    detail       text NOT NULL CHECK (char_length(detail) BETWEEN 1 AND 1000),
    found_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reconcile_cursors (
    provider   text PRIMARY KEY,
    -- Stripe: the `created` time (unix seconds) of the newest event seen.
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_anchors (
    id          uuid PRIMARY KEY,
    seq         bigint NOT NULL CHECK (seq >= 0),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    cid         text NOT NULL,
    anchored_at timestamptz NOT NULL DEFAULT now()
);
