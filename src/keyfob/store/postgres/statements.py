"""The SQL the PostgreSQL store sends, one statement per operation.

Every value is a bound parameter (``$1`` …); asyncpg prepares each statement once per
connection and keeps it.
"""

# S608 flags every f-string that builds SQL. Here they only splice the shared column
# lists into fixed statements; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from typing import Final

from ..rows import (
    CLIENT_COLUMNS,
    CODE_COLUMNS,
    EVENT_COLUMNS,
    KEY_COLUMNS,
    SESSION_COLUMNS,
    USER_COLUMNS,
)

# Advisory lock keys: "keyfob" in ASCII, then a number per purpose. One keyspace for the
# whole database cluster, so the prefix keeps clear of other applications' locks.
MIGRATION_LOCK: Final = (0x6B6579666F62 << 16) | 1
PURGE_LOCK: Final = (0x6B6579666F62 << 16) | 2

INSERT_SESSION: Final = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, SESSION_COLUMNS.count(',') + 2))})"
)
SELECT_SESSION: Final = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = $1"

# The one conditional update of spec §3, one statement and one round trip. `> $4`
# mirrors Session.is_expired (now >= deadline means expired).
# The rotation is stamped with when the server applies it, not when it was asked for:
# $4 (the request's time) plus however long the statement waited after keyfob sent it at
# wall time $6 (a stalled network, a lock). A statement that keyfob gave up on and that
# the server ran later then opens its grace window from then, so the retry the 503 asked
# for gets the identical successor (spec §4). Clock skew only shifts this forward by the
# skew (never before $4); docs/scaling.md.
_APPLIED_AT = "($4 + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp())::float8 - $6))"
ROTATE: Final = (
    f"UPDATE sessions SET counter = counter + 1, rotated_at = {_APPLIED_AT}, "
    f"last_used_at = {_APPLIED_AT}, "
    f"idle_expires_at = LEAST({_APPLIED_AT} + $5, absolute_expires_at) "
    "WHERE sid = $1 AND counter = $2 AND secret_hash = $3 AND revoked_at IS NULL "
    "AND idle_expires_at > $4 AND absolute_expires_at > $4 "
    f"RETURNING {SESSION_COLUMNS}"
)
# The same, for a refresh bound to the client the session was issued to ($7).
ROTATE_FOR_CLIENT: Final = ROTATE.replace(
    f"RETURNING {SESSION_COLUMNS}", f"AND client_id = $7 RETURNING {SESSION_COLUMNS}"
)
# The trigger sessions_notify_revoked announces each of these revocations.
REVOKE: Final = (
    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 "
    "WHERE sid = $1 AND revoked_at IS NULL AND ($4::text IS NULL OR user_id = $4) "
    f"RETURNING {SESSION_COLUMNS}"
)
REVOKE_USER: Final = (
    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 "
    "WHERE user_id = $1 AND revoked_at IS NULL AND ($4::text IS NULL OR sid <> $4) "
    "RETURNING seq, sid"
)
LIST_SESSIONS: Final = (
    f"SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL "
    "AND idle_expires_at > $2 AND absolute_expires_at > $2 ORDER BY created_at DESC, seq"
)
REVOKED_SINCE: Final = (
    "SELECT sid, revoked_at, absolute_expires_at FROM sessions "
    "WHERE revoked_at >= $1 AND absolute_expires_at > $2 ORDER BY seq"
)
# The purge, in two statements per batch: expired sessions, then long-revoked ones.
# Each batch is chosen and locked in one step, skipping rows another transaction holds
# (a refresh in flight): the purge never waits for a refresh, and a refresh waits at
# most for one batch's rows, which are expired or revoked and so could not rotate anyway.
# Each walks one index in its order and stops after $2 rows. Kept apart, rather than one
# statement with OR, because the generic plan PostgreSQL settles on for a prepared
# statement after five runs cannot tell how many rows an OR of two parameterised ranges
# matches and scans the whole table instead; an ordered walk of one index with a LIMIT is
# the cheapest plan whatever the parameters.
#
# Expired sessions are found by day through sessions_by_expiry_day (migration 0004: no
# index may read idle_expires_at, or no rotation would be a HOT update), then checked
# against their exact end. floor() is monotonic, so an end at or before $1 always has a
# day at or before $1's: the day only narrows the walk, it never drops a session.
PURGE_EXPIRED: Final = (
    "DELETE FROM sessions WHERE sid = ANY(ARRAY("
    "SELECT sid FROM sessions WHERE expiry_day <= floor($1::float8 / 86400) "
    "AND LEAST(idle_expires_at, absolute_expires_at) <= $1 "
    "ORDER BY expiry_day LIMIT $2 FOR UPDATE SKIP LOCKED))"
)
PURGE_REVOKED: Final = (
    "DELETE FROM sessions WHERE sid = ANY(ARRAY("
    "SELECT sid FROM sessions WHERE revoked_at < $1 "
    "ORDER BY revoked_at LIMIT $2 FOR UPDATE SKIP LOCKED))"
)
COUNT_SESSIONS: Final = "SELECT count(*) FROM sessions"

INSERT_USER: Final = (
    "INSERT INTO users (id, username, username_key, password_hash, created_at) "
    "VALUES ($1, $2, $3, $4, $5)"
)
#: The constraint a taken username violates (migration 0001).
USERNAME_CONSTRAINT: Final = "users_username_key_unique"
SELECT_USER: Final = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
SELECT_USER_BY_NAME: Final = f"SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"
SET_PASSWORD_HASH: Final = "UPDATE users SET password_hash = $2 WHERE id = $1"
LIST_USERS: Final = (
    f'SELECT {USER_COLUMNS} FROM users ORDER BY created_at, username COLLATE "C" LIMIT $1 OFFSET $2'
)

INSERT_EVENT: Final = (
    "INSERT INTO events (kind, at, user_id, sid, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)"
)


def list_events(filters: list[str]) -> str:
    """The event query for ``filters`` (``"kind ="`` …, each taking the next parameter).

    One statement text per combination of filters (at most 16, each prepared once): each
    gets the plan for its own indexes.
    """
    clauses = [f"{column} ${i}" for i, column in enumerate(filters, start=1)]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ${len(filters) + 1}"


LOAD_KEYS: Final = f"SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, seq"
# An upsert keeps the row (and its seq, so its place among equal created_at).
SAVE_KEY: Final = (
    f"INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, public_jwk = excluded.public_jwk, "
    "private_encrypted = excluded.private_encrypted, created_at = excluded.created_at, "
    "activates_at = excluded.activates_at, retired_at = excluded.retired_at, "
    "expires_at = excluded.expires_at"
)
DELETE_KEYS: Final = "DELETE FROM signing_keys WHERE kid = ANY($1::text[])"

INSERT_CLIENT: Final = (
    f"INSERT INTO clients ({CLIENT_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
#: The constraint a taken client id violates (migration 0002).
CLIENT_ID_CONSTRAINT: Final = "clients_pkey"
SELECT_CLIENT: Final = f"SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"
LIST_CLIENTS: Final = f"SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, client_id"
DELETE_CLIENT: Final = "DELETE FROM clients WHERE client_id = $1"
SET_CLIENT_SECRET_HASH: Final = "UPDATE clients SET secret_hash = $2 WHERE client_id = $1"
FORGET_ASSERTIONS: Final = "DELETE FROM client_assertions WHERE expires_at <= $1"
# A used assertion id is recorded; one recorded before is taken over only once expired.
# Concurrent inserts of one jti wait for each other on the primary key: one returns a row.
USE_ASSERTION: Final = (
    "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at "
    "WHERE client_assertions.expires_at <= $4 RETURNING 1"
)

INSERT_CODE: Final = (
    f"INSERT INTO authorization_codes ({CODE_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
SELECT_CODE: Final = f"SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"
# Single use: of concurrent updates the row lock lets one in first; the others then
# re-check used_at on the row it wrote (READ COMMITTED), match nothing, return no row.
USE_CODE: Final = (
    "UPDATE authorization_codes SET used_at = $2, sid = $3 "
    "WHERE code_hash = $1 AND used_at IS NULL RETURNING 1"
)
# Like the session purge: a batch skips rows another transaction holds.
PURGE_CODES: Final = (
    "DELETE FROM authorization_codes WHERE code_hash = ANY(ARRAY("
    "SELECT code_hash FROM authorization_codes WHERE expires_at < $1 "
    "LIMIT $2 FOR UPDATE SKIP LOCKED))"
)
