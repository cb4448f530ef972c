-- A wallet identity's DID form, did:pkh:eip155:<chain>:<address> (NULL for other kinds): written
-- once here for every query that shows identities.
CREATE FUNCTION identity_did(kind identity_type, chain_id bigint, identifier text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN kind = 'blockchain_address'
                      THEN 'did:pkh:eip155:' || chain_id || ':' || identifier END $$;
