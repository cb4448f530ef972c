-- A mail may carry one attachment (an issued invoice's PDF), kept with the outbox row until the
-- mail is delivered and purged with it.
ALTER TABLE mail_outbox
    ADD COLUMN attachment_name text CHECK (char_length(attachment_name) BETWEEN 1 AND 100),
    ADD COLUMN attachment_type text CHECK (char_length(attachment_type) BETWEEN 3 AND 100),
    ADD COLUMN attachment      bytea CHECK (octet_length(attachment) <= 10485760),
    ADD CONSTRAINT mail_outbox_attachment CHECK (
        (attachment IS NULL) = (attachment_name IS NULL) AND (attachment IS NULL) = (attachment_type IS NULL));
