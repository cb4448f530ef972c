-- Mail waiting to be delivered, written in the same transaction as whatever it tells about (a
-- reset token, a verification link), with a `mailer` job. The mailer delivers each row once
-- (locked while it is sent, then marked sent), so an SMTP outage delays mail and never loses it.
CREATE TABLE mail_outbox (
    id          uuid PRIMARY KEY,
    recipient   text NOT NULL CHECK (char_length(recipient) BETWEEN 3 AND 254),
    subject     text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 200),
    text_body   text NOT NULL,
    html_body   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    -- A permanent refusal (an unknown mailbox): never retried.
    failed_at   timestamptz,
    failure     text
);
-- Delivered or refused mail is purged by housekeeping after a week.
CREATE INDEX mail_outbox_done ON mail_outbox (created_at) WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL;
