-- Authorization codes (RFC 6749 §4.1): the same table as SQLite's 0005_authorization_codes.

-- Only SHA-256 of a code is kept (keyfob.core.authorization_codes says why a fast hash
-- suits 256 random bits). used_at and sid are set by the first presentation at the
-- token endpoint, in one conditional update (used_at IS NULL), so a code is exchanged
-- once across processes; sid names the session issued from it, which a second
-- presentation revokes. A code goes with its client.
CREATE TABLE authorization_codes (
    code_hash      bytea            NOT NULL PRIMARY KEY,
    client_id      text             NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        text             NOT NULL,
    redirect_uri   text             NOT NULL,
    scope          text             NOT NULL,
    code_challenge text,
    nonce          text,
    auth_time      double precision NOT NULL,
    created_at     double precision NOT NULL,
    expires_at     double precision NOT NULL,
    used_at        double precision,
    sid            text
);

-- The purge of codes long expired; and the cascade of a client's removal.
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
CREATE INDEX authorization_codes_by_client ON authorization_codes (client_id);
