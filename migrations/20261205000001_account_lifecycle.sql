-- Account lifecycle: email verification, password reset, sessions with where they were used, and
-- the login history read from the audit log.

-- Whether the address in users.email has been proven by a link sent to it. Reset whenever the
-- address changes (link, unlink).
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- Where each refresh token was issued (a sign-in or a rotation): a session shows its latest.
ALTER TABLE refresh_tokens
    ADD COLUMN ip text CHECK (char_length(ip) <= 64),
    ADD COLUMN user_agent text CHECK (char_length(user_agent) <= 512);
CREATE INDEX refresh_tokens_live_idx ON refresh_tokens (user_id)
    WHERE rotated_at IS NULL AND revoked_at IS NULL;

-- Single-use tokens mailed to an address: password reset and email verification. Only the
-- SHA-256 of the token is stored; it is bound to the address it was sent to, so a token for an
-- address the account no longer has proves nothing.
CREATE TYPE account_token_purpose AS ENUM ('password_reset', 'email_verification');
CREATE TABLE account_tokens (
    token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    purpose     account_token_purpose NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose) WHERE used_at IS NULL;
CREATE INDEX account_tokens_expiry_idx ON account_tokens (expires_at);

-- The login history: a subject's audit rows newest first, by keyset on the id.
CREATE INDEX audit_log_subject_id_idx ON audit_log (subject_id, id);
