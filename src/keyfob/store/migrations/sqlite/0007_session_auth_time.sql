-- When the user signed in, for sessions that began later than that: a code grant's
-- session starts at the exchange, after the sign-in on the authorization page, and its
-- id tokens must keep naming the sign-in (OpenID Connect Core §12.2). NULL: the session
-- began at the sign-in (created_at), as every session made before this migration did.
ALTER TABLE sessions ADD COLUMN auth_time REAL;
