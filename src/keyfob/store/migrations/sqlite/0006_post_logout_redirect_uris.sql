-- Where RP-initiated logout may send the browser back to (OpenID Connect RP-Initiated
-- Logout 1.0 §3.1): a JSON array like redirect_uris, compared by exact string match.
-- Existing clients get none, so no logout redirects anywhere until one is registered.
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
