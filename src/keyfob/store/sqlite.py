"""The SQLite store: keyfob's embedded default (spec §6), safe across processes on one file.

Its file, connections and thread are :mod:`keyfob.store.sqlite_database`'s; this module
is the domain operations on them.

Atomicity. A refresh is one conditional statement (``UPDATE … WHERE sid = ? AND counter
= ? AND secret_hash = ? AND …``) inside a ``BEGIN IMMEDIATE`` transaction, followed by
a read of the row it changed, so of concurrent callers with the same counter exactly one
matches, whichever process they are in. Every write transaction starts with ``BEGIN
IMMEDIATE``: it takes the write lock first, waiting up to ``busy_timeout``, rather than
failing when a read snapshot goes stale. (Not ``UPDATE … RETURNING``: on this schema it
costs ~35 µs more than the UPDATE and a SELECT by primary key; bench/layers.py.)

Group commit. Single-statement writes (rotations, revocations of one session, new
sessions, events) that wait for the connection together run in one ``BEGIN IMMEDIATE …
COMMIT``, up to ``MAX_GROUP`` of them: one fsync for all. Nothing waits for a group to
fill; each caller's result is handed over only after the COMMIT returned. A failed
BEGIN or COMMIT fails every caller of the group (nothing was changed); a statement that
fails rolls the group back, and its writes run again one by one, so each caller gets
what it would have got alone.

Errors. As :mod:`keyfob.store.sqlite_database` translates them, and a taken username is
:class:`~keyfob.exceptions.UserExists`.

Cancellation. A job or write runs to the end even if the awaiting coroutine is
cancelled: a rotation is then committed though its caller never saw it, which is the
lost-response case that the grace window of spec §3 exists for.
"""

# S608 flags every f-string that builds SQL. Here they only splice the shared column
# lists and this module's own clauses together; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..core.authorization_codes import AuthorizationCode
from ..core.clients import Client
from ..core.keys import KeyRecord
from ..core.models import EventKind, SecurityEvent, Session, User
from ..exceptions import ClientExists, ConfigurationError, UserExists
from . import rows
from .protocol import RevokedSession
from .rows import (
    CLIENT_COLUMNS,
    CODE_COLUMNS,
    EVENT_COLUMNS,
    KEY_COLUMNS,
    SESSION_COLUMNS,
    USER_COLUMNS,
)
from .sqlite_database import (
    SQLiteDatabase,
    Synchronous,
    execute,
    execute_many,
    write_transaction,
)
from .sqlite_webhooks import SQLiteWebhooks

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["SQLiteStore"]

#: UPSERT (3.24) is the newest feature the store needs.
_MIN_SQLITE = (3, 24, 0)
_URL_PREFIX = "sqlite:///"
#: What a write's commit may take on top of its wait for the write lock: the sync of
#: the log, which no timeout bounds.
_COMMIT_ALLOWANCE: Final = 1.0

_INSERT_SESSION = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(SESSION_COLUMNS.split(',')))})"
)
_SELECT_SESSION = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = ?"

# The one conditional update of spec §3; `> :now` mirrors Session.is_expired (now >= deadline).
_ROTATE = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = :now, last_used_at = :now, "
    "idle_expires_at = min(:now + :idle_ttl, absolute_expires_at) "
    "WHERE sid = :sid AND counter = :counter AND secret_hash = :secret_hash "
    "AND revoked_at IS NULL AND idle_expires_at > :now AND absolute_expires_at > :now"
)
# The same, for a refresh bound to the client the session was issued to.
_ROTATE_FOR_CLIENT = _ROTATE + " AND client_id = :client_id"
_REVOKE = (
    "UPDATE sessions SET revoked_at = :now, revoked_reason = :reason "
    "WHERE sid = :sid AND revoked_at IS NULL AND (:user_id IS NULL OR user_id = :user_id)"
)
_USER_SESSIONS_TO_REVOKE = (
    "user_id = :user_id AND revoked_at IS NULL AND (:except_sid IS NULL OR sid <> :except_sid)"
)
_SAVE_KEY = (
    f"INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, public_jwk = excluded.public_jwk, "
    "private_encrypted = excluded.private_encrypted, created_at = excluded.created_at, "
    "activates_at = excluded.activates_at, retired_at = excluded.retired_at, "
    "expires_at = excluded.expires_at"
)
_READ_EPOCH = "SELECT n FROM revocation_epoch WHERE id = 1"
_INSERT_CLIENT = (
    f"INSERT INTO clients ({CLIENT_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(CLIENT_COLUMNS.split(',')))})"
)
_SELECT_CLIENT = f"SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?"
# A used assertion id is recorded; one recorded before is taken over only once expired.
_USE_ASSERTION = (
    "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES (:client_id, :jti, :exp) "
    "ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at "
    "WHERE client_assertions.expires_at <= :now"
)
_FORGET_ASSERTIONS = "DELETE FROM client_assertions WHERE expires_at <= :now"
_INSERT_CODE = (
    f"INSERT INTO authorization_codes ({CODE_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(CODE_COLUMNS.split(',')))})"
)
_SELECT_CODE = f"SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = ?"
# Single use: only the first presentation finds used_at empty.
_USE_CODE = (
    "UPDATE authorization_codes SET used_at = ?, sid = ? WHERE code_hash = ? AND used_at IS NULL"
)
_PURGE_CODES = (
    "DELETE FROM authorization_codes WHERE rowid IN "
    "(SELECT rowid FROM authorization_codes WHERE expires_at < ? LIMIT ?)"
)


class SQLiteStore(SQLiteWebhooks):
    """A :class:`keyfob.store.Store` in one SQLite file.

    ``busy_timeout`` (seconds) is how long an operation waits for another connection's
    write lock before failing with :class:`StoreUnavailable`.
    """

    scheme = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "full",
        busy_timeout: float = 5.0,
    ) -> None:
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise ConfigurationError(
                f"keyfob needs SQLite {'.'.join(map(str, _MIN_SQLITE))} or newer; "
                f"this Python has {sqlite3.sqlite_version}"
            )
        if synchronous not in ("full", "normal"):
            raise ConfigurationError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        if busy_timeout < 0:
            raise ConfigurationError("busy_timeout cannot be negative")
        self.path = Path(path)
        if str(self.path) in ("", ".", ":memory:"):
            raise ConfigurationError(f"not a database file: {str(path)!r}")
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = float(busy_timeout)
        self._db = SQLiteDatabase(
            self.path, synchronous=synchronous, busy_timeout=self.busy_timeout
        )

    @classmethod
    def from_url(cls, url: str, *, settings: Settings | None = None) -> SQLiteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.

        An in-memory database is refused: each connection would get its own empty one,
        so processes (and the CLI) would not share sessions.
        """
        if not url.startswith(_URL_PREFIX):
            raise ConfigurationError(
                f"not a SQLite URL: {url!r} (expected sqlite:///relative.db or sqlite:////absolute.db)"
            )
        path = url.removeprefix(_URL_PREFIX)
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ConfigurationError(
                f"the SQLite store needs a database file, not {url!r}; use memory:// for "
                "a throwaway store"
            )
        if "?" in path:
            raise ConfigurationError(f"SQLite URL options are not supported: {url!r}")
        synchronous: Synchronous = settings.sqlite_synchronous if settings is not None else "full"
        return cls(path, synchronous=synchronous)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @property
    def max_write_delay(self) -> float:
        """The longest a write takes from its caller reading the clock to its commit.

        A write waits up to ``busy_timeout`` for another connection's write lock, and
        once more if its group failed and it runs again alone; then it commits, which
        is allowed a second. Work queued before it on the store's one connection is not
        counted: nothing bounds how much of it there is.
        """
        return 2 * self.busy_timeout + _COMMIT_ALLOWANCE

    # connection lifecycle

    async def open(self) -> None:
        """Connect (WAL, ``synchronous``, ``busy_timeout``, foreign keys) and migrate."""
        await self._db.open()

    async def migrate(self) -> list[str]:
        """Apply pending migrations (connecting first if needed); return their names."""
        return await self._db.migrate()

    async def close(self) -> None:
        await self._db.close()

    # sessions

    async def create_session(self, session: Session) -> None:
        params = rows.session_values(session)
        await self._db.write(lambda conn: execute(conn, _INSERT_SESSION, params))

    async def rotate(
        self,
        sid: str,
        *,
        counter: int,
        secret_hash: bytes,
        now: float,
        idle_ttl: float,
        client_id: str | None = None,
    ) -> Session | None:
        params: dict[str, Any] = {
            "sid": sid,
            "counter": counter,
            "secret_hash": secret_hash,
            "now": now,
            "idle_ttl": idle_ttl,
        }
        statement = _ROTATE
        if client_id is not None:
            params["client_id"] = client_id
            statement = _ROTATE_FOR_CLIENT
        asked_at = time.monotonic()

        def rotate(conn: sqlite3.Connection) -> Session | None:
            # Stamped with when it applies, not when it was asked for: a rotation held up
            # by a lock (or run after its caller gave up) opens its grace window from
            # then, so a retry gets the identical successor (spec §4).
            params["now"] = now + (time.monotonic() - asked_at)
            return _update_one(conn, statement, params, sid)

        return await self._db.write(rotate)

    async def get_session(self, sid: str) -> Session | None:
        found = await self._db.run(lambda conn: conn.execute(_SELECT_SESSION, (sid,)).fetchall())
        return rows.session(found[0], checked=True) if found else None

    async def revoke_session(
        self, sid: str, *, now: float, reason: str, user_id: str | None = None
    ) -> Session | None:
        params = {"sid": sid, "now": now, "reason": reason, "user_id": user_id}
        return await self._db.write(lambda conn: _update_one(conn, _REVOKE, params, sid))

    async def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, except_sid: str | None = None
    ) -> list[str]:
        params = {"user_id": user_id, "now": now, "reason": reason, "except_sid": except_sid}
        update = (
            "UPDATE sessions SET revoked_at = :now, revoked_reason = :reason "
            f"WHERE {_USER_SESSIONS_TO_REVOKE}"
        )

        select = f"SELECT rowid, sid FROM sessions WHERE {_USER_SESSIONS_TO_REVOKE}"

        def select_then_update(conn: sqlite3.Connection) -> list[str]:
            selected = conn.execute(select, params).fetchall()
            conn.execute(update, params)
            # In creation order, like the memory store.
            return [sid for _, sid in sorted(selected)]

        return await self._db.run(lambda conn: write_transaction(conn, select_then_update))

    async def list_sessions(self, user_id: str, *, now: float) -> list[Session]:
        sql = (
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? AND revoked_at IS NULL "
            "AND idle_expires_at > ? AND absolute_expires_at > ? ORDER BY created_at DESC, rowid"
        )
        found = await self._db.run(lambda conn: conn.execute(sql, (user_id, now, now)).fetchall())
        return [rows.session(row, checked=True) for row in found]

    async def revoked_since(self, since: float, *, now: float) -> list[RevokedSession]:
        sql = (
            "SELECT rowid, sid, revoked_at, absolute_expires_at FROM sessions "
            "WHERE revoked_at >= ? AND absolute_expires_at > ?"
        )
        found = await self._db.run(lambda conn: conn.execute(sql, (since, now)).fetchall())
        # Sorted here: ORDER BY rowid would make the planner scan the table, not the index.
        return [
            RevokedSession(sid, float(revoked_at), float(absolute))
            for _, sid, revoked_at, absolute in sorted(found)
        ]

    async def purge_sessions(self, *, now: float, revoked_before: float, limit: int) -> int:
        # One statement, so a batch is atomic; each batch is short, so refreshes
        # waiting for the write lock wait at most one batch.
        sql = (
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions "
            "WHERE min(idle_expires_at, absolute_expires_at) <= ? OR revoked_at < ? LIMIT ?)"
        )
        params = (now, revoked_before, max(limit, 0))
        return await self._db.run(lambda conn: conn.execute(sql, params).rowcount)

    def revocation_marker(self) -> object:
        """The number of revocations ever made in this database (moved by a trigger).

        One indexed read of one row through a read-only connection that never waits for
        a lock (a WAL reader does not wait for writers): microseconds, on the loop.
        """
        conn = self._db.marker_connection
        if conn is None:
            return None
        try:
            found = conn.execute(_READ_EPOCH).fetchall()
        except sqlite3.Error:
            # Busy for an instant (the log is being reset) or unreadable: report "may have
            # changed"; the re-read that follows runs on the store thread and reports errors.
            return object()
        return found[0][0] if found else object()

    async def count_sessions(self) -> int:
        found = await self._db.run(
            lambda conn: conn.execute("SELECT count(*) FROM sessions").fetchall()
        )
        return int(found[0][0])

    # users

    async def create_user(self, user: User) -> None:
        sql = (
            "INSERT INTO users (id, username, username_key, password_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?)"
        )
        params = (
            user.id,
            user.username,
            user.username.casefold(),
            user.password_hash,
            user.created_at,
        )

        def insert(conn: sqlite3.Connection) -> None:
            try:
                execute(conn, sql, params)
            except sqlite3.IntegrityError as exc:
                if "users.username_key" in str(exc):
                    raise UserExists("that username is already taken") from None
                raise

        await self._db.run(insert)

    async def get_user(self, user_id: str) -> User | None:
        sql = f"SELECT {USER_COLUMNS} FROM users WHERE id = ?"
        found = await self._db.run(lambda conn: conn.execute(sql, (user_id,)).fetchall())
        return rows.user(found[0]) if found else None

    async def get_user_by_name(self, username: str) -> User | None:
        sql = f"SELECT {USER_COLUMNS} FROM users WHERE username_key = ?"
        key = username.casefold()
        found = await self._db.run(lambda conn: conn.execute(sql, (key,)).fetchall())
        return rows.user(found[0]) if found else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        sql = "UPDATE users SET password_hash = ? WHERE id = ?"
        await self._db.run(lambda conn: execute(conn, sql, (password_hash, user_id)))

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        sql = f"SELECT {USER_COLUMNS} FROM users ORDER BY created_at, username LIMIT ? OFFSET ?"
        params = (max(limit, 0), max(offset, 0))
        found = await self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        return [rows.user(row) for row in found]

    # events

    async def record_event(self, event: SecurityEvent) -> None:
        sql = "INSERT INTO events (kind, at, user_id, sid, ip, detail) VALUES (?, ?, ?, ?, ?, ?)"
        params = (str(event.kind), event.at, event.user_id, event.sid, event.ip, event.detail)
        await self._db.write(lambda conn: execute(conn, sql, params))

    async def list_events(
        self,
        *,
        limit: int = 100,
        kind: EventKind | None = None,
        user_id: str | None = None,
        sid: str | None = None,
        before_id: int | None = None,
    ) -> list[SecurityEvent]:
        given = rows.event_filters(kind=kind, user_id=user_id, sid=sid, before_id=before_id)
        clauses = [f"{column} ?" for column, _ in given]
        params = [value for _, value in given]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ?"
        params.append(max(limit, 0))
        found = await self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        return [rows.event(row) for row in found]

    # signing keys

    async def load_keys(self) -> list[KeyRecord]:
        sql = f"SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, rowid"
        found = await self._db.run(lambda conn: conn.execute(sql).fetchall())
        return [rows.key(row) for row in found]

    async def save_keys(self, records: Sequence[KeyRecord]) -> None:
        params = [
            (
                r.kid,
                r.alg,
                r.public_jwk,
                r.private_encrypted,
                r.created_at,
                r.activates_at,
                r.retired_at,
                r.expires_at,
            )
            for r in records
        ]
        # An upsert, not INSERT OR REPLACE: the row keeps its place among equal created_at.
        await self._db.run(
            lambda conn: write_transaction(conn, lambda conn: execute_many(conn, _SAVE_KEY, params))
        )

    async def delete_keys(self, kids: Sequence[str]) -> None:
        params = [(kid,) for kid in kids]
        sql = "DELETE FROM signing_keys WHERE kid = ?"
        await self._db.run(
            lambda conn: write_transaction(conn, lambda conn: execute_many(conn, sql, params))
        )

    # clients

    async def create_client(self, client: Client) -> None:
        params = rows.client_values(client)

        def insert(conn: sqlite3.Connection) -> None:
            try:
                execute(conn, _INSERT_CLIENT, params)
            except sqlite3.IntegrityError as exc:
                if "clients.client_id" in str(exc):
                    raise ClientExists(f"the client id {client.client_id!r} is taken") from None
                raise

        await self._db.run(insert)

    async def get_client(self, client_id: str) -> Client | None:
        found = await self._db.run(
            lambda conn: conn.execute(_SELECT_CLIENT, (client_id,)).fetchall()
        )
        return rows.client(found[0]) if found else None

    async def list_clients(self) -> list[Client]:
        sql = f"SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, client_id"
        found = await self._db.run(lambda conn: conn.execute(sql).fetchall())
        return [rows.client(row) for row in found]

    async def delete_client(self, client_id: str) -> bool:
        sql = "DELETE FROM clients WHERE client_id = ?"
        deleted = await self._db.run(
            lambda conn: write_transaction(
                conn, lambda conn: conn.execute(sql, (client_id,)).rowcount
            )
        )
        return bool(deleted)

    async def set_client_secret_hash(self, client_id: str, secret_hash: bytes) -> bool:
        sql = "UPDATE clients SET secret_hash = ? WHERE client_id = ?"
        changed = await self._db.run(
            lambda conn: write_transaction(
                conn, lambda conn: conn.execute(sql, (secret_hash, client_id)).rowcount
            )
        )
        return bool(changed)

    async def use_assertion_id(
        self, client_id: str, jti: str, *, expires_at: float, now: float
    ) -> bool:
        params = {"client_id": client_id, "jti": jti, "exp": expires_at, "now": now}

        def use(conn: sqlite3.Connection) -> bool:
            conn.execute(_FORGET_ASSERTIONS, params)
            return bool(conn.execute(_USE_ASSERTION, params).rowcount == 1)

        return await self._db.run(lambda conn: write_transaction(conn, use))

    # authorization codes

    async def create_authorization_code(self, code: AuthorizationCode) -> None:
        params = rows.code_values(code)
        # A taken hash or an unknown client is an IntegrityError: StoreIntegrityError.
        await self._db.write(lambda conn: execute(conn, _INSERT_CODE, params))

    async def get_authorization_code(self, code_hash: bytes) -> AuthorizationCode | None:
        found = await self._db.run(lambda conn: conn.execute(_SELECT_CODE, (code_hash,)).fetchall())
        return rows.code(found[0]) if found else None

    async def use_authorization_code(
        self, code_hash: bytes, *, now: float, sid: str | None
    ) -> bool:
        params = (now, sid, code_hash)
        used = await self._db.write(lambda conn: conn.execute(_USE_CODE, params).rowcount)
        return bool(used == 1)

    async def purge_authorization_codes(self, *, expired_before: float, limit: int) -> int:
        params = (expired_before, max(limit, 0))
        return await self._db.run(lambda conn: conn.execute(_PURGE_CODES, params).rowcount)


def _update_one(
    conn: sqlite3.Connection, update: str, params: dict[str, Any], sid: str
) -> Session | None:
    """A conditional update of one session, then the row as updated; None if none matched.

    Runs inside a write transaction (a group's), so the read sees exactly this update.
    """
    if conn.execute(update, params).rowcount != 1:
        return None
    return rows.session(conn.execute(_SELECT_SESSION, (sid,)).fetchall()[0], checked=True)
