"""The SQLite store: keyfob's embedded default (spec §6), safe across processes on one file.

Threading. Each store owns one connection, used by one piece of work at a time in the
order it arrived (:mod:`keyfob.store.sqlite_runner`). Reads and transactions of several
statements run on the store's own thread; single-statement writes run in groups, their
statements on the event loop and their COMMIT on the thread. The event loop never waits
for a disk sync or another process's lock. Several stores on one file, in one process or
in many, are serialised by SQLite's locks.

Atomicity. A refresh is one conditional statement (``UPDATE … WHERE sid = ? AND counter
= ? AND secret_hash = ? AND …``) inside a ``BEGIN IMMEDIATE`` transaction, followed by
a read of the row it changed, so of concurrent callers with the same counter exactly one
matches, whichever process they are in. Every write transaction starts with ``BEGIN
IMMEDIATE``: it takes the write lock first, waiting up to ``busy_timeout``, rather than
failing when a read snapshot goes stale. (Not ``UPDATE … RETURNING``: on this schema it
costs ~35 µs more than the UPDATE and a SELECT by primary key; bench/layers.py.)

Durability. WAL journal; ``synchronous=FULL`` (the default) syncs the log on every
commit, so a rotation acknowledged to a caller survives a crash of the process and a
power loss; ``NORMAL`` survives a crash of the process only and saves an fsync.

Group commit. Single-statement writes (rotations, revocations of one session, new
sessions, events) that wait for the connection together run in one ``BEGIN IMMEDIATE …
COMMIT``, up to ``MAX_GROUP`` of them: one fsync for all. Nothing waits for a group to
fill; each caller's result is handed over only after the COMMIT returned. A failed
BEGIN or COMMIT fails every caller of the group (nothing was changed); a statement that
fails rolls the group back, and its writes run again one by one, so each caller gets
what it would have got alone.

Errors. Every ``sqlite3`` error becomes :class:`~keyfob.exceptions.StoreUnavailable`
(nothing was changed: the statement or transaction rolled back), except a taken
username (:class:`~keyfob.exceptions.UserExists`), and a corrupt or foreign file or a
refused write such as a duplicate sid (:class:`~keyfob.exceptions.StoreIntegrityError`).

Cancellation. A job or write runs to the end even if the awaiting coroutine is
cancelled: a rotation is then committed though its caller never saw it, which is the
lost-response case that the grace window of spec §3 exists for.
"""

# S608 flags every f-string that builds SQL. Here they only splice this module's own
# column lists and clauses together; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..core.keys import KeyRecord
from ..core.models import DeviceInfo, EventKind, SecurityEvent, Session, User
from ..exceptions import (
    ConfigurationError,
    KeyfobError,
    StoreIntegrityError,
    StoreUnavailable,
    UserExists,
)
from .migrations import (
    LEDGER_DDL,
    LEDGER_SELECT,
    Migration,
    ledger_insert,
    load_migrations,
    pending_migrations,
)
from .protocol import RevokedSession
from .sqlite_runner import ConnectionRunner, Operation, rollback_quietly

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["SQLiteStore"]

logger = logging.getLogger("keyfob")

T = TypeVar("T")
Synchronous = Literal["full", "normal"]

#: UPSERT (3.24) is the newest feature the store needs.
_MIN_SQLITE = (3, 24, 0)
_URL_PREFIX = "sqlite:///"

_SESSION_COLUMNS = (
    "sid, user_id, client_id, scope, secret_hash, counter, created_at, last_used_at, "
    "rotated_at, idle_expires_at, absolute_expires_at, user_agent, ip, revoked_at, "
    "revoked_reason"
)
_SELECT_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE sid = ?"

# The one conditional update of spec §3; `> :now` mirrors Session.is_expired (now >= deadline).
_ROTATE = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = :now, last_used_at = :now, "
    "idle_expires_at = min(:now + :idle_ttl, absolute_expires_at) "
    "WHERE sid = :sid AND counter = :counter AND secret_hash = :secret_hash "
    "AND revoked_at IS NULL AND idle_expires_at > :now AND absolute_expires_at > :now"
)
_REVOKE = (
    "UPDATE sessions SET revoked_at = :now, revoked_reason = :reason "
    "WHERE sid = :sid AND revoked_at IS NULL AND (:user_id IS NULL OR user_id = :user_id)"
)
_USER_SESSIONS_TO_REVOKE = (
    "user_id = :user_id AND revoked_at IS NULL AND (:except_sid IS NULL OR sid <> :except_sid)"
)
_KEY_COLUMNS = (
    "kid, alg, public_jwk, private_encrypted, created_at, activates_at, retired_at, expires_at"
)
_SAVE_KEY = (
    f"INSERT INTO signing_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, public_jwk = excluded.public_jwk, "
    "private_encrypted = excluded.private_encrypted, created_at = excluded.created_at, "
    "activates_at = excluded.activates_at, retired_at = excluded.retired_at, "
    "expires_at = excluded.expires_at"
)
_READ_EPOCH = "SELECT n FROM revocation_epoch WHERE id = 1"
_USER_COLUMNS = "id, username, password_hash, created_at"
_EVENT_COLUMNS = "id, kind, at, user_id, sid, ip, detail"


class SQLiteStore:
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
        self._migrations: list[Migration] = load_migrations("sqlite")
        self._runner: ConnectionRunner | None = None
        self._stop_runner: Callable[[], object] = _nothing
        # Used by one piece of work at a time (the runner sees to it), on either thread.
        self._conn: sqlite3.Connection | None = None
        # A second, read-only connection for revocation_marker(), used on the event loop.
        self._marker_conn: sqlite3.Connection | None = None

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

    # connection lifecycle

    async def open(self) -> None:
        """Connect (WAL, ``synchronous``, ``busy_timeout``, foreign keys) and migrate."""
        await self._ensure_connected()
        await self._run(self._migrate)

    async def migrate(self) -> list[str]:
        """Apply pending migrations (connecting first if needed); return their names."""
        await self._ensure_connected()
        return await self._run(self._migrate)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Detach it here, on the loop, so no marker read can race the close on the thread.
        marker_conn, self._marker_conn = self._marker_conn, None
        try:
            await runner.run(lambda: self._guarded(lambda: self._disconnect(marker_conn), None))
        finally:
            self._stop_runner()

    async def _ensure_connected(self) -> None:
        if self._runner is not None:
            return
        runner = ConnectionRunner(
            f"keyfob-sqlite {self.path.name}",
            connection=self._require_connection,
            run_alone=self._write_alone,
            error_for=self._group_error,
            busy_timeout=self.busy_timeout,
        )
        # Ends the thread on close(), or when a store nobody closed is collected.
        self._stop_runner = weakref.finalize(self, runner.stopper())
        self._runner = runner
        try:
            await runner.run(lambda: self._guarded(self._connect, None))
        except BaseException:
            if self._runner is runner:
                self._runner = None
            self._stop_runner()
            raise

    async def _run(self, operation: Callable[[sqlite3.Connection], T], *, group: bool = False) -> T:
        """Run ``operation`` with the connection, on the store's thread.

        ``group``: ``operation`` is a write that opens no transaction of its own, so it
        runs in the next group of writes (statements on the event loop, COMMIT on the
        thread; :mod:`keyfob.store.sqlite_runner`). It must be quick: a statement or two
        on one row, looked up by key.
        """
        runner = self._runner
        if runner is None:
            raise StoreUnavailable("the SQLite store is not open")
        if group:
            result: T = await runner.write(operation)
            return result
        return await runner.run(lambda: self._guarded(operation, self._require_connection))

    # everything below named _something(conn) runs on the store's thread

    def _require_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the SQLite store is closed")
        return self._conn

    def _guarded(
        self,
        operation: Callable[..., T],
        connection: Callable[[], sqlite3.Connection] | None,
    ) -> T:
        """Call ``operation`` (with the connection, if asked) and translate its errors."""
        try:
            return operation(connection()) if connection is not None else operation()
        except KeyfobError:
            raise
        except sqlite3.Error as exc:
            if self._conn is not None:
                rollback_quietly(self._conn)
            raise self._translate(exc) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"the SQLite database {self.path} is unavailable: {exc}"
            ) from exc

    def _write_alone(self, operation: Operation) -> Any:
        """A write of a group that failed, run again in a transaction of its own."""
        return self._guarded(
            lambda conn: _write_transaction(conn, operation), self._require_connection
        )

    def _group_error(self, exc: BaseException) -> BaseException:
        """A fresh exception for one caller of a failed group (callers share no instance)."""
        if isinstance(exc, sqlite3.Error):
            error = self._translate(exc)
        elif isinstance(exc, KeyfobError):
            error = type(exc)(*exc.args)
        else:
            error = StoreUnavailable(f"the SQLite database {self.path} is unavailable: {exc}")
        error.__cause__ = exc
        return error

    def _translate(self, exc: sqlite3.Error) -> KeyfobError:
        code = getattr(exc, "sqlite_errorname", None) or ""
        if code.startswith("SQLITE_CORRUPT") or code == "SQLITE_NOTADB":
            return StoreIntegrityError(f"the SQLite database {self.path} is unreadable: {exc}")
        if isinstance(exc, sqlite3.IntegrityError):
            return StoreIntegrityError(f"the SQLite store refused a write: {exc}")
        return StoreUnavailable(f"the SQLite database {self.path} is unavailable: {exc}")

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit (isolation_level=None): a single statement is its own transaction and
        # writes say BEGIN IMMEDIATE themselves. `timeout` is busy_timeout. Used from the
        # event loop and the store's thread, never both at once (the runner's rule).
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            mode = self._use_wal(conn)
            if mode != "wal":
                # Still correct (rollback journal, same locks), but readers wait for writers.
                logger.warning("SQLite could not use WAL for %s (journal_mode=%s)", self.path, mode)
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys = ON")
            # No busy wait on the marker connection: it runs on the event loop.
            marker = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
        except BaseException:
            conn.close()
            raise
        try:
            marker.execute("PRAGMA query_only = ON")
        except BaseException:
            marker.close()
            conn.close()
            raise
        self._conn = conn
        self._marker_conn = marker

    def _use_wal(self, conn: sqlite3.Connection) -> str:
        """Switch the file to WAL (it stays so: a no-op once anyone has done it)."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0])
            except sqlite3.OperationalError as exc:
                # Switching needs the only lock on the file. When new connections in two
                # processes both hold a read lock and want it, SQLite answers SQLITE_BUSY
                # at once, without the busy handler, rather than deadlock: back off, retry.
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _disconnect(self, marker_conn: sqlite3.Connection | None) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if marker_conn is not None:
                marker_conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[Migration]:
            conn.execute(LEDGER_DDL)
            applied = {int(v): str(n) for v, n in conn.execute(LEDGER_SELECT).fetchall()}
            todo = pending_migrations(self._migrations, applied)
            record = ledger_insert(["?", "?", "?"])
            for migration in todo:
                for statement in _split_statements(migration):
                    conn.execute(statement)
                conn.execute(record, (migration.version, migration.name, time.time()))
            return todo

        applied_now = _write_transaction(conn, apply)
        for migration in applied_now:
            logger.info("applied SQLite migration %s to %s", migration.name, self.path)
        return [m.name for m in applied_now]

    # sessions

    async def create_session(self, session: Session) -> None:
        params = (
            session.sid,
            session.user_id,
            session.client_id,
            session.scope,
            session.secret_hash,
            session.counter,
            session.created_at,
            session.last_used_at,
            session.rotated_at,
            session.idle_expires_at,
            session.absolute_expires_at,
            session.device.user_agent,
            session.device.ip,
            session.revoked_at,
            session.revoked_reason,
        )
        sql = f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES ({', '.join('?' * len(params))})"
        await self._run(lambda conn: _execute(conn, sql, params), group=True)

    async def rotate(
        self, sid: str, *, counter: int, secret_hash: bytes, now: float, idle_ttl: float
    ) -> Session | None:
        params = {
            "sid": sid,
            "counter": counter,
            "secret_hash": secret_hash,
            "now": now,
            "idle_ttl": idle_ttl,
        }
        return await self._run(lambda conn: _update_one(conn, _ROTATE, params, sid), group=True)

    async def get_session(self, sid: str) -> Session | None:
        rows = await self._run(lambda conn: conn.execute(_SELECT_SESSION, (sid,)).fetchall())
        return _session(rows[0]) if rows else None

    async def revoke_session(
        self, sid: str, *, now: float, reason: str, user_id: str | None = None
    ) -> Session | None:
        params = {"sid": sid, "now": now, "reason": reason, "user_id": user_id}
        return await self._run(lambda conn: _update_one(conn, _REVOKE, params, sid), group=True)

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

        return await self._run(lambda conn: _write_transaction(conn, select_then_update))

    async def list_sessions(self, user_id: str, *, now: float) -> list[Session]:
        sql = (
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = ? AND revoked_at IS NULL "
            "AND idle_expires_at > ? AND absolute_expires_at > ? ORDER BY created_at DESC, rowid"
        )
        rows = await self._run(lambda conn: conn.execute(sql, (user_id, now, now)).fetchall())
        return [_session(row) for row in rows]

    async def revoked_since(self, since: float, *, now: float) -> list[RevokedSession]:
        sql = (
            "SELECT rowid, sid, revoked_at, absolute_expires_at FROM sessions "
            "WHERE revoked_at >= ? AND absolute_expires_at > ?"
        )
        rows = await self._run(lambda conn: conn.execute(sql, (since, now)).fetchall())
        # Sorted here: ORDER BY rowid would make the planner scan the table, not the index.
        return [
            RevokedSession(sid, float(revoked_at), float(absolute))
            for _, sid, revoked_at, absolute in sorted(rows)
        ]

    async def purge_sessions(self, *, now: float, revoked_before: float, limit: int) -> int:
        # One statement, so a batch is atomic; each batch is short, so refreshes
        # waiting for the write lock wait at most one batch.
        sql = (
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions "
            "WHERE min(idle_expires_at, absolute_expires_at) <= ? OR revoked_at < ? LIMIT ?)"
        )
        params = (now, revoked_before, max(limit, 0))
        return await self._run(lambda conn: conn.execute(sql, params).rowcount)

    def revocation_marker(self) -> object:
        """The number of revocations ever made in this database (moved by a trigger).

        One indexed read of one row through a read-only connection that never waits for
        a lock (a WAL reader does not wait for writers): microseconds, on the loop.
        """
        conn = self._marker_conn
        if conn is None:
            return None
        try:
            rows = conn.execute(_READ_EPOCH).fetchall()
        except sqlite3.Error:
            # Busy for an instant (the log is being reset) or unreadable: report "may have
            # changed"; the re-read that follows runs on the store thread and reports errors.
            return object()
        return rows[0][0] if rows else object()

    async def count_sessions(self) -> int:
        rows = await self._run(
            lambda conn: conn.execute("SELECT count(*) FROM sessions").fetchall()
        )
        return int(rows[0][0])

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
                _execute(conn, sql, params)
            except sqlite3.IntegrityError as exc:
                if "users.username_key" in str(exc):
                    raise UserExists("that username is already taken") from None
                raise

        await self._run(insert)

    async def get_user(self, user_id: str) -> User | None:
        sql = f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?"
        rows = await self._run(lambda conn: conn.execute(sql, (user_id,)).fetchall())
        return _user(rows[0]) if rows else None

    async def get_user_by_name(self, username: str) -> User | None:
        sql = f"SELECT {_USER_COLUMNS} FROM users WHERE username_key = ?"
        key = username.casefold()
        rows = await self._run(lambda conn: conn.execute(sql, (key,)).fetchall())
        return _user(rows[0]) if rows else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        sql = "UPDATE users SET password_hash = ? WHERE id = ?"
        await self._run(lambda conn: _execute(conn, sql, (password_hash, user_id)))

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        sql = f"SELECT {_USER_COLUMNS} FROM users ORDER BY created_at, username LIMIT ? OFFSET ?"
        params = (max(limit, 0), max(offset, 0))
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [_user(row) for row in rows]

    # events

    async def record_event(self, event: SecurityEvent) -> None:
        sql = "INSERT INTO events (kind, at, user_id, sid, ip, detail) VALUES (?, ?, ?, ?, ?, ?)"
        params = (str(event.kind), event.at, event.user_id, event.sid, event.ip, event.detail)
        await self._run(lambda conn: _execute(conn, sql, params), group=True)

    async def list_events(
        self,
        *,
        limit: int = 100,
        kind: EventKind | None = None,
        user_id: str | None = None,
        sid: str | None = None,
        before_id: int | None = None,
    ) -> list[SecurityEvent]:
        clauses: list[str] = []
        params: list[object] = []
        for clause, value in (
            ("kind = ?", None if kind is None else str(kind)),
            ("user_id = ?", user_id),
            ("sid = ?", sid),
            ("id < ?", before_id),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ?"
        params.append(max(limit, 0))
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [_event(row) for row in rows]

    # signing keys

    async def load_keys(self) -> list[KeyRecord]:
        sql = f"SELECT {_KEY_COLUMNS} FROM signing_keys ORDER BY created_at, rowid"
        rows = await self._run(lambda conn: conn.execute(sql).fetchall())
        return [_key(row) for row in rows]

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
        await self._run(
            lambda conn: _write_transaction(
                conn, lambda conn: _execute_many(conn, _SAVE_KEY, params)
            )
        )

    async def delete_keys(self, kids: Sequence[str]) -> None:
        params = [(kid,) for kid in kids]
        sql = "DELETE FROM signing_keys WHERE kid = ?"
        await self._run(
            lambda conn: _write_transaction(conn, lambda conn: _execute_many(conn, sql, params))
        )


def _nothing() -> None:
    return None


def _update_one(
    conn: sqlite3.Connection, update: str, params: dict[str, Any], sid: str
) -> Session | None:
    """A conditional update of one session, then the row as updated; None if none matched.

    Runs inside a write transaction (a group's), so the read sees exactly this update.
    """
    if conn.execute(update, params).rowcount != 1:
        return None
    return _session(conn.execute(_SELECT_SESSION, (sid,)).fetchall()[0])


def _execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> None:
    # Run to completion and drop the cursor here: a cursor must not leave the thread.
    conn.execute(sql, params).close()


def _execute_many(conn: sqlite3.Connection, sql: str, params: Sequence[Sequence[Any]]) -> None:
    conn.executemany(sql, params).close()


def _write_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``body`` in a ``BEGIN IMMEDIATE`` transaction: all of it, or none of it."""
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout); a deferred
    # transaction that read first would fail at once if another writer got in between.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise
    return result


def _split_statements(migration: Migration) -> Iterator[str]:
    """The statements of a migration file, one at a time.

    ``executescript`` would commit the open transaction first, so a migration and its
    ledger row could not be applied together.
    """
    pending = ""
    for piece in migration.sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statement = _strip_comments(pending)
            if statement != ";":
                yield statement
            pending = ""
    if _strip_comments(pending.removesuffix(";")):
        raise StoreIntegrityError(f"migration {migration.name} ends inside a statement")


def _strip_comments(sql: str) -> str:
    lines = (line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return "\n".join(lines).strip()


def _session(row: Sequence[Any]) -> Session:
    (
        sid,
        user_id,
        client_id,
        scope,
        secret_hash,
        counter,
        created_at,
        last_used_at,
        rotated_at,
        idle_expires_at,
        absolute_expires_at,
        user_agent,
        ip,
        revoked_at,
        revoked_reason,
    ) = row
    if not isinstance(secret_hash, bytes) or not isinstance(counter, int):
        raise StoreIntegrityError(f"session {sid!r} has an unreadable secret hash or counter")
    # float(): a REAL column can hand back a whole number as an int.
    return Session(
        sid=sid,
        user_id=user_id,
        client_id=client_id,
        scope=scope,
        secret_hash=secret_hash,
        counter=counter,
        created_at=float(created_at),
        last_used_at=float(last_used_at),
        rotated_at=None if rotated_at is None else float(rotated_at),
        idle_expires_at=float(idle_expires_at),
        absolute_expires_at=float(absolute_expires_at),
        device=DeviceInfo(user_agent=user_agent, ip=ip),
        revoked_at=None if revoked_at is None else float(revoked_at),
        revoked_reason=revoked_reason,
    )


def _user(row: Sequence[Any]) -> User:
    user_id, username, password_hash, created_at = row
    return User(id=user_id, username=username, password_hash=password_hash, created_at=created_at)


def _event(row: Sequence[Any]) -> SecurityEvent:
    event_id, kind, at, user_id, sid, ip, detail = row
    try:
        event_kind = EventKind(kind)
    except ValueError:
        raise StoreIntegrityError(f"event {event_id} has an unknown kind {kind!r}") from None
    return SecurityEvent(
        kind=event_kind, at=at, user_id=user_id, sid=sid, ip=ip, detail=detail, id=event_id
    )


def _key(row: Sequence[Any]) -> KeyRecord:
    kid, alg, public_jwk, private_encrypted, created_at, activates_at, retired_at, expires_at = row
    return KeyRecord(
        kid=kid,
        alg=alg,
        public_jwk=public_jwk,
        private_encrypted=private_encrypted,
        created_at=created_at,
        activates_at=activates_at,
        retired_at=retired_at,
        expires_at=expires_at,
    )
