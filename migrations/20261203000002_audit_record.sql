-- The one place an audit row is written: `audit.rs` calls it, and so do the sign-in statements,
-- which write their token and audit row in a single round trip. Returns the row's id.
CREATE FUNCTION audit_record(p_action text, p_actor uuid, p_subject uuid, p_details jsonb)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    INSERT INTO audit_log (action, actor_id, subject_id, details)
    VALUES (p_action, p_actor, p_subject, COALESCE(p_details, '{}'::jsonb))
    RETURNING id
$$;
