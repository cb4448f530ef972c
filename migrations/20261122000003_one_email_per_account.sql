-- An account holds at most one email/password identity (users.email mirrors it). The service
-- checks first for a clear message; this index is the guarantee under concurrency.
CREATE UNIQUE INDEX identities_one_email_per_user_key ON identities (user_id)
    WHERE type = 'email_password';
