-- identity_did again, with the chain id cast to text. `bigint || text` is only STABLE (it calls
-- the type's output function), so the IMMUTABLE function could not be inlined: PostgreSQL ran
-- it through the SQL-function executor for every identity, which halved GET /profile's query
-- throughput (pgbench: 11k -> 22k queries/s once inlined). `bigint::text` and `text || text`
-- are IMMUTABLE, so the planner now inlines the body into each query.
CREATE OR REPLACE FUNCTION identity_did(kind identity_type, chain_id bigint, identifier text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN kind = 'blockchain_address'
                      THEN 'did:pkh:eip155:' || chain_id::text || ':' || identifier END $$;
