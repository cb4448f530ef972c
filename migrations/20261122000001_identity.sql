-- Identity: users, their identities, refresh-token families and the audit log.

CREATE TYPE user_role AS ENUM ('ADMIN', 'STAFF', 'CLIENT');
CREATE TYPE identity_type AS ENUM ('email_password', 'blockchain_address', 'did');

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- The address of the user's email/password identity, if any; uniqueness lives on identities.
    email       text,
    role        user_role NOT NULL DEFAULT 'CLIENT',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX users_admins_idx ON users (id) WHERE role = 'ADMIN';

CREATE TABLE identities (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type              identity_type NOT NULL,
    -- Email address (domain lower-cased) or EIP-55 wallet address.
    identifier        text NOT NULL,
    -- Argon2id PHC string for email_password; NULL for wallets and DIDs.
    credential        text,
    is_primary_login  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT identities_type_identifier_key UNIQUE (type, identifier),
    CONSTRAINT identities_credential_check CHECK ((type = 'email_password') = (credential IS NOT NULL))
);

-- Emails are unique whatever their case.
CREATE UNIQUE INDEX identities_email_lower_key ON identities (lower(identifier))
    WHERE type = 'email_password';
CREATE INDEX identities_user_id_idx ON identities (user_id);
CREATE UNIQUE INDEX identities_one_primary_key ON identities (user_id) WHERE is_primary_login;

CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash   bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    family_id    uuid NOT NULL,
    parent_id    uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The identity the session was opened with (unlinking it revokes the session).
    identity_id  uuid REFERENCES identities (id) ON DELETE SET NULL,
    amr          text[] NOT NULL,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    -- The family's absolute expiry; rotation copies it, never extends it.
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_identity_idx ON refresh_tokens (identity_id);

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    action       text NOT NULL,
    actor_id     uuid,
    subject_id   uuid,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, occurred_at);
CREATE INDEX audit_log_action_idx ON audit_log (action, occurred_at);
