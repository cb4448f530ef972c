-- The one place a SIWE nonce is spent (owned by `identity::wallet::nonce`): `nonce::spend` calls
-- it, and so does wallet login's one-statement sign-in. True when this call spent the nonce,
-- false when it was spent before. A concurrent spender of the same nonce waits on the primary key
-- until the first one's transaction ends, then finds it taken.
CREATE FUNCTION spend_nonce(p_nonce text, p_expires_at timestamptz)
RETURNS boolean LANGUAGE sql VOLATILE AS $$
    WITH spent AS (
        INSERT INTO spent_nonces (nonce, expires_at) VALUES (p_nonce, p_expires_at)
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM spent)
$$;
