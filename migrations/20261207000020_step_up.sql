-- /login/mfa counts every attempt on a challenge before it checks the code, in the statement
-- that claims the challenge (`attempts < max`): of any number of parallel guesses, only the
-- first few are checked at all, and a challenge that has used them up is burnt.
ALTER TABLE mfa_challenges ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0);

-- Step-up for money: when the session's sign-in happened (the access token's `auth_time`). A
-- refresh is not a sign-in: rotation copies it. Existing sessions get their family's first
-- issue, which is when they were signed in.
ALTER TABLE refresh_tokens ADD COLUMN auth_time timestamptz;
UPDATE refresh_tokens t SET auth_time = f.signed_in
FROM (SELECT family_id, min(issued_at) AS signed_in FROM refresh_tokens GROUP BY family_id) f
WHERE f.family_id = t.family_id;
ALTER TABLE refresh_tokens
    ALTER COLUMN auth_time SET DEFAULT now(),
    ALTER COLUMN auth_time SET NOT NULL;
