-- Pins a pinning service still had queued when the upload answered: each is followed by a
-- `pin-follow-up` job (enqueued in the same transaction) until it is pinned or has failed.
CREATE TYPE pin_state AS ENUM ('QUEUED', 'PINNED', 'FAILED');

CREATE TABLE ipfs_pin_requests (
    cid        text NOT NULL REFERENCES ipfs_objects (cid) ON DELETE CASCADE,
    request_id text NOT NULL CHECK (char_length(request_id) BETWEEN 1 AND 255),
    state      pin_state NOT NULL DEFAULT 'QUEUED',
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cid, request_id)
);
