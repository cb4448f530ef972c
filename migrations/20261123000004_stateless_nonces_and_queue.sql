-- Nonces are now self-authenticating (HMAC, with their own expiry) and cost no write to issue.
-- Only spent nonces are stored, until they expire; the housekeeping job deletes them then.
DROP TABLE auth_nonces;

CREATE TABLE spent_nonces (
    nonce       text PRIMARY KEY CHECK (nonce ~ '^[a-f0-9]{56}$'),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX spent_nonces_expires_idx ON spent_nonces (expires_at);

-- The local queue: what SQS is under Lambda. A message is leased by setting visible_at ahead
-- (its visibility timeout); a worker deletes it when done, or makes it visible again later with
-- back-off. After max_attempts receives it is dead-lettered (dead_at set) and kept for
-- inspection until the housekeeping job drops it.
CREATE TABLE queue_messages (
    id            uuid PRIMARY KEY,
    queue         text NOT NULL CHECK (queue ~ '^[a-z0-9-]{1,80}$'),
    body          text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
    visible_at    timestamptz NOT NULL DEFAULT now(),
    dead_at       timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_messages_ready_idx ON queue_messages (queue, visible_at) WHERE dead_at IS NULL;
