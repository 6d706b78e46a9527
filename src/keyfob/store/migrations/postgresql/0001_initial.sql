-- keyfob's first PostgreSQL schema: the same tables as the SQLite one. Times are double
-- precision unix seconds; one row per session. Applied in one transaction under an
-- advisory lock (PostgresStore.migrate), so the whole file commits or none of it does.

-- One row per session (spec §2): the store keeps a hash of the per-session secret and
-- the current rotation counter, never a refresh token (spec §3).
-- Sessions carry no foreign key to users: an application may issue sessions for
-- accounts it keeps elsewhere (SessionManager.issue).
-- seq stands in for SQLite's rowid: sessions created in the same instant are listed in
-- the order they were created, as every other store lists them.
CREATE TABLE sessions (
    sid                 text             NOT NULL PRIMARY KEY,
    seq                 bigint           GENERATED ALWAYS AS IDENTITY,
    user_id             text             NOT NULL,
    client_id           text             NOT NULL,
    scope               text             NOT NULL,
    secret_hash         bytea            NOT NULL,
    counter             bigint           NOT NULL,
    created_at          double precision NOT NULL,
    last_used_at        double precision NOT NULL,
    rotated_at          double precision,
    idle_expires_at     double precision NOT NULL,
    absolute_expires_at double precision NOT NULL,
    user_agent          text             NOT NULL DEFAULT '',
    ip                  text             NOT NULL DEFAULT '',
    revoked_at          double precision,
    revoked_reason      text
);

-- A user's sessions, newest first (sessions list, logout-all).
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- The recently revoked set and the purge of long-revoked sessions.
CREATE INDEX sessions_by_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- The purge of expired sessions: the same expression as Session.expires_at().
CREATE INDEX sessions_by_expiry ON sessions (LEAST(idle_expires_at, absolute_expires_at));

-- Every revocation, by any writer (this keyfob, another instance, the CLI, a manual
-- UPDATE), notifies the channel with the sid; so does a session inserted already revoked
-- (as the SQLite store counts it). NOTIFY is transactional: listeners hear of it when,
-- and only if, the revocation commits. A refresh does not set revoked_at, so no trigger
-- fires on the rotation path.
CREATE FUNCTION keyfob_notify_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyfob_revocations', NEW.sid);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_revoked
    AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION keyfob_notify_revoked();

CREATE TRIGGER sessions_notify_inserted_revoked
    AFTER INSERT ON sessions
    FOR EACH ROW
    WHEN (NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION keyfob_notify_revoked();

-- username_key is the casefolded username (Python's str.casefold, computed by the store):
-- names are unique case-insensitively for all of Unicode (lower() does not fold 'ß' to
-- 'ss'), exactly like the memory and SQLite stores.
CREATE TABLE users (
    id            text             NOT NULL PRIMARY KEY,
    username      text             NOT NULL,
    username_key  text             NOT NULL,
    password_hash text             NOT NULL,
    created_at    double precision NOT NULL,
    CONSTRAINT users_username_key_unique UNIQUE (username_key)
);

-- COLLATE "C": list_users orders names by code point, like the other stores, whatever
-- the database's collation.
CREATE INDEX users_by_created_at ON users (created_at, username COLLATE "C");

-- The security-event log (spec §7); an identity column never hands out an id twice,
-- which keeps before_id paging stable.
CREATE TABLE events (
    id      bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind    text             NOT NULL,
    at      double precision NOT NULL,
    user_id text,
    sid     text,
    ip      text             NOT NULL DEFAULT '',
    detail  text             NOT NULL DEFAULT ''
);

CREATE INDEX events_by_user ON events (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_by_sid ON events (sid, id) WHERE sid IS NOT NULL;
CREATE INDEX events_by_kind ON events (kind, id);

-- Signing keys (spec §3.6): the private half only encrypted under a key derived from the
-- deployment secret, which is never in the database. seq keeps a replaced key in its
-- place among keys created in the same instant (SQLite's rowid again).
CREATE TABLE signing_keys (
    kid               text             NOT NULL PRIMARY KEY,
    seq               bigint           GENERATED ALWAYS AS IDENTITY,
    alg               text             NOT NULL,
    public_jwk        text             NOT NULL,
    private_encrypted bytea            NOT NULL,
    created_at        double precision NOT NULL,
    activates_at      double precision NOT NULL,
    retired_at        double precision,
    expires_at        double precision
);
