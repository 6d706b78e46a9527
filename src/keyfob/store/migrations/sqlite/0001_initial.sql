-- keyfob's first SQLite schema. Times are REAL unix seconds; one row per session.

-- One row per session (spec §2): the store keeps a hash of the per-session secret and
-- the current rotation counter, never a refresh token (spec §3).
-- Sessions carry no foreign key to users: an application may issue sessions for
-- accounts it keeps elsewhere (SessionManager.issue).
CREATE TABLE sessions (
    sid                 TEXT    NOT NULL PRIMARY KEY,
    user_id             TEXT    NOT NULL,
    client_id           TEXT    NOT NULL,
    scope               TEXT    NOT NULL,
    secret_hash         BLOB    NOT NULL,
    counter             INTEGER NOT NULL,
    created_at          REAL    NOT NULL,
    last_used_at        REAL    NOT NULL,
    rotated_at          REAL,
    idle_expires_at     REAL    NOT NULL,
    absolute_expires_at REAL    NOT NULL,
    user_agent          TEXT    NOT NULL DEFAULT '',
    ip                  TEXT    NOT NULL DEFAULT '',
    revoked_at          REAL,
    revoked_reason      TEXT
);

-- A user's sessions, newest first (sessions list, logout-all).
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- The recently revoked set and the purge of long-revoked sessions.
CREATE INDEX sessions_by_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- The purge of expired sessions: the same expression as Session.expires_at().
CREATE INDEX sessions_by_expiry ON sessions (min(idle_expires_at, absolute_expires_at));

-- A counter that every revocation moves, in the same statement (by trigger), so other
-- processes learn cheaply that they should re-read the revoked sessions
-- (Store.revocation_marker). Rotations do not touch revoked_at, so they never fire it.
CREATE TABLE revocation_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);

INSERT INTO revocation_epoch (id, n) VALUES (1, 0);

CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    UPDATE revocation_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER sessions_inserted_revoked AFTER INSERT ON sessions
WHEN NEW.revoked_at IS NOT NULL
BEGIN
    UPDATE revocation_epoch SET n = n + 1 WHERE id = 1;
END;

-- username_key is the casefolded username: names are unique case-insensitively for all
-- of Unicode (COLLATE NOCASE folds ASCII only), like the memory store.
CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL
);

CREATE INDEX users_by_created_at ON users (created_at, username);

-- The security-event log (spec §7); AUTOINCREMENT so an id is never reused after a
-- delete, which keeps before_id paging stable.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    at      REAL NOT NULL,
    user_id TEXT,
    sid     TEXT,
    ip      TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT ''
);

CREATE INDEX events_by_user ON events (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_by_sid ON events (sid, id) WHERE sid IS NOT NULL;
CREATE INDEX events_by_kind ON events (kind, id);

-- Signing keys (spec §3.6): the private half only encrypted under a key derived from the
-- deployment secret, which is never in the database.
CREATE TABLE signing_keys (
    kid               TEXT NOT NULL PRIMARY KEY,
    alg               TEXT NOT NULL,
    public_jwk        TEXT NOT NULL,
    private_encrypted BLOB NOT NULL,
    created_at        REAL NOT NULL,
    activates_at      REAL NOT NULL,
    retired_at        REAL,
    expires_at        REAL
);
