-- Jobs taken over HTTP (OpenFaaS): each signed delivery's call id, so that a captured request
-- posted again is refused. A delivery that failed gives its id back (it may be redelivered). Rows
-- outlive the signatures' 12-hour tolerance and are purged after 2 days.
CREATE TABLE job_receipts (
    call_id     text PRIMARY KEY CHECK (char_length(call_id) BETWEEN 1 AND 200),
    queue       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_receipts_received ON job_receipts (received_at);
