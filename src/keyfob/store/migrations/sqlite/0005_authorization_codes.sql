-- Authorization codes (RFC 6749 §4.1): single-use, 60 s, bound to the client, the
-- redirect URI, the scope, the PKCE challenge and the OIDC nonce.

-- Only SHA-256 of a code is kept (keyfob.core.authorization_codes says why a fast hash
-- suits 256 random bits). used_at and sid are set by the first presentation at the
-- token endpoint, in one conditional update (used_at IS NULL), so a code is exchanged
-- once across processes; sid names the session issued from it, which a second
-- presentation revokes. A code goes with its client.
CREATE TABLE authorization_codes (
    code_hash      BLOB NOT NULL PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    auth_time      REAL NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL,
    used_at        REAL,
    sid            TEXT
);

-- The purge of codes long expired; and the cascade of a client's removal.
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
CREATE INDEX authorization_codes_by_client ON authorization_codes (client_id);
