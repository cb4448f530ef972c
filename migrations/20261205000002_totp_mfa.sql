-- TOTP MFA (RFC 6238): one authenticator per account, its secret sealed with AES-256-GCM under
-- MFA_ENCRYPTION_KEY (never stored in the clear), the last step accepted (a code is accepted
-- once), recovery codes (SHA-256 of 100-bit codes) and the pending second steps of sign-ins.

CREATE TABLE mfa_totp (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- nonce || ciphertext || tag; the account id is the associated data.
    secret_sealed bytea NOT NULL CHECK (octet_length(secret_sealed) BETWEEN 29 AND 128),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- NULL while enrolled but not confirmed with a first code.
    activated_at  timestamptz,
    -- The latest time step (unix time / 30) whose code was accepted: only later ones count.
    last_step     bigint NOT NULL DEFAULT 0
);

CREATE TABLE mfa_recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL CHECK (octet_length(code_hash) = 32),
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in whose first factor passed and whose second is awaited: the mfa_token's SHA-256,
-- single use, short-lived, bound to the account, identity and method of that sign-in.
CREATE TABLE mfa_challenges (
    token_hash   bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    identity_id  uuid NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    method       text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX mfa_challenges_expiry_idx ON mfa_challenges (expires_at);
