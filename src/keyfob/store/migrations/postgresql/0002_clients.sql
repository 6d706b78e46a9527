-- The OAuth client registry (RFC 6749 §2) and the single-use record of client assertions:
-- the same tables as SQLite's 0002_clients.

-- A client secret is kept only as its SHA-256 (keyfob.core.clients says why a fast hash
-- suits a generated 256-bit secret); a private_key_jwt client's public JWK Set as JSON.
-- redirect_uris is a JSON array, compared by exact string match; grant_types and scopes
-- are space-separated tokens.
CREATE TABLE clients (
    client_id     text             NOT NULL PRIMARY KEY,
    name          text             NOT NULL,
    auth_method   text             NOT NULL,
    redirect_uris text             NOT NULL,
    grant_types   text             NOT NULL,
    scopes        text             NOT NULL,
    created_at    double precision NOT NULL,
    secret_hash   bytea,
    jwks          text,
    require_pkce  boolean          NOT NULL,
    first_party   boolean          NOT NULL
);

CREATE INDEX clients_by_created_at ON clients (created_at, client_id);

-- A private_key_jwt assertion is single-use (RFC 7523 §3 item 7): its jti is kept until
-- its exp, after which the assertion is refused as expired anyway.
CREATE TABLE client_assertions (
    client_id  text             NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    jti        text             NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE INDEX client_assertions_by_expiry ON client_assertions (expires_at);
