-- The OAuth client registry (RFC 6749 §2) and the single-use record of client assertions.

-- A client secret is kept only as its SHA-256 (keyfob.core.clients says why a fast hash
-- suits a generated 256-bit secret); a private_key_jwt client's public JWK Set as JSON.
-- redirect_uris is a JSON array, compared by exact string match; grant_types and scopes
-- are space-separated tokens.
CREATE TABLE clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    auth_method   TEXT    NOT NULL,
    redirect_uris TEXT    NOT NULL,
    grant_types   TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    created_at    REAL    NOT NULL,
    secret_hash   BLOB,
    jwks          TEXT,
    require_pkce  INTEGER NOT NULL,
    first_party   INTEGER NOT NULL
);

CREATE INDEX clients_by_created_at ON clients (created_at, client_id);

-- A private_key_jwt assertion is single-use (RFC 7523 §3 item 7): its jti is kept until
-- its exp, after which the assertion is refused as expired anyway.
CREATE TABLE client_assertions (
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    jti        TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE INDEX client_assertions_by_expiry ON client_assertions (expires_at);
