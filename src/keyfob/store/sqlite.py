"""The SQLite store: keyfob's embedded default (spec §6), safe across processes on one file.

Threading. Each store owns one connection, created, used and closed on one dedicated
thread that takes jobs from a queue. The event loop never blocks on a disk write or a
lock wait, and the store's own callers are serialised by the thread's queue.
Several stores on one file, in one process or in many, are serialised by SQLite's locks.

Atomicity. A refresh is one statement (``UPDATE … WHERE sid = ? AND counter = ? AND
secret_hash = ? AND … RETURNING …``), so of concurrent callers with the same counter
exactly one matches, whichever process they are in. Writes of several statements run in
``BEGIN IMMEDIATE`` transactions: they take the write lock first, waiting up to
``busy_timeout``, rather than failing when a read snapshot goes stale.

Durability. WAL journal; ``synchronous=FULL`` (the default) syncs the log on every
commit, so a rotation acknowledged to a caller survives a crash of the process and a
power loss; ``NORMAL`` survives a crash of the process only and saves an fsync.

Group commit. Single-statement writes (rotations, revocations of one session, new
sessions, events) that are already waiting in the thread's queue when it gets to them
run together in one ``BEGIN IMMEDIATE … COMMIT``, up to ``_MAX_GROUP`` of them: one
fsync for all. Nothing waits for a group to fill; each caller's result is handed over
only after the COMMIT returned. A failed BEGIN or COMMIT fails every caller of the group
(nothing was changed); a statement that fails rolls the group back, and its jobs are
run again one by one, so each caller gets what it would have got alone.

Errors. Every ``sqlite3`` error becomes :class:`~keyfob.exceptions.StoreUnavailable`
(nothing was changed: the statement or transaction rolled back), except a taken
username (:class:`~keyfob.exceptions.UserExists`), and a corrupt or foreign file or a
refused write such as a duplicate sid (:class:`~keyfob.exceptions.StoreIntegrityError`).

Cancellation. A job handed to the thread runs to the end even if the awaiting coroutine
is cancelled: a rotation is then committed though its caller never saw it, which is the
lost-response case that the grace window of spec §3 exists for.
"""

# S608 flags every f-string that builds SQL. Here they only splice this module's own
# column lists and clauses together; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

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

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["SQLiteStore"]

logger = logging.getLogger("keyfob")

T = TypeVar("T")
Synchronous = Literal["full", "normal"]

#: UPSERT (3.24) is the oldest feature the store needs; RETURNING (3.35) is optional.
_MIN_SQLITE = (3, 24, 0)
_URL_PREFIX = "sqlite:///"
#: The most single-statement writes committed together (bounds a group's latency).
_MAX_GROUP = 64

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

    #: Whether ``rotate`` and the revocations use ``UPDATE … RETURNING`` (SQLite ≥ 3.35)
    #: rather than an update and a read inside one ``BEGIN IMMEDIATE`` transaction.
    use_returning: ClassVar[bool] = sqlite3.sqlite_version_info >= (3, 35, 0)

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
        self._thread: _ConnectionThread | None = None
        self._stop_thread: Callable[[], object] = _nothing
        # Touched only on that thread.
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
        thread, self._thread = self._thread, None
        if thread is None:
            return
        # Detach it here, on the loop, so no marker read can race the close on the thread.
        marker_conn, self._marker_conn = self._marker_conn, None
        try:
            await thread.run(lambda: self._guarded(lambda: self._disconnect(marker_conn), None))
        finally:
            # Work queued behind the disconnect finds no connection and fails cleanly.
            self._stop_thread()

    async def _ensure_connected(self) -> None:
        if self._thread is not None:
            return
        thread = _ConnectionThread(f"keyfob-sqlite {self.path.name}")
        # Stops the thread on close(), or when a store nobody closed is collected.
        self._stop_thread = weakref.finalize(self, thread.stop)
        self._thread = thread
        try:
            await thread.run(lambda: self._guarded(self._connect, None))
        except BaseException:
            if self._thread is thread:
                self._thread = None
            self._stop_thread()
            raise

    async def _run(self, operation: Callable[[sqlite3.Connection], T], *, group: bool = False) -> T:
        """Run ``operation`` with the connection on the store's thread.

        ``group``: ``operation`` is one statement that writes (no transaction of its
        own), so it may be committed together with others waiting in the queue.
        """
        thread = self._thread
        if thread is None:
            raise StoreUnavailable("the SQLite store is not open")
        return await thread.run(
            lambda: self._guarded(operation, self._require_connection),
            (self._run_group, operation) if group else None,
        )

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
                _rollback_quietly(self._conn)
            raise self._translate(exc) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"the SQLite database {self.path} is unavailable: {exc}"
            ) from exc

    def _run_group(
        self, operations: Sequence[Callable[[sqlite3.Connection], Any]]
    ) -> list[_Outcome] | None:
        """Run single-statement writes in one transaction: one outcome each, or None.

        None: a statement failed, the transaction was rolled back, and the caller must
        run the jobs again one by one. A failed BEGIN or COMMIT is every job's error.
        """
        try:
            conn = self._require_connection()
            conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            return [(None, self._group_error(exc)) for _ in operations]
        try:
            results = [operation(conn) for operation in operations]
        except BaseException:
            _rollback_quietly(conn)
            return None
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback_quietly(conn)
            return [(None, self._group_error(exc)) for _ in operations]
        return [(result, None) for result in results]

    def _group_error(self, exc: Exception) -> KeyfobError:
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
        # multi-statement writes say BEGIN IMMEDIATE themselves. `timeout` is busy_timeout.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
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
        return await self._run(
            lambda conn: self._update_one(conn, _ROTATE, params, sid), group=self.use_returning
        )

    async def get_session(self, sid: str) -> Session | None:
        rows = await self._run(lambda conn: conn.execute(_SELECT_SESSION, (sid,)).fetchall())
        return _session(rows[0]) if rows else None

    async def revoke_session(
        self, sid: str, *, now: float, reason: str, user_id: str | None = None
    ) -> Session | None:
        params = {"sid": sid, "now": now, "reason": reason, "user_id": user_id}
        return await self._run(
            lambda conn: self._update_one(conn, _REVOKE, params, sid), group=self.use_returning
        )

    def _update_one(
        self, conn: sqlite3.Connection, update: str, params: dict[str, Any], sid: str
    ) -> Session | None:
        """Run a conditional update of one session; the session as updated, or None."""
        if self.use_returning:
            # One statement: the update and the read are one atomic step.
            rows = conn.execute(f"{update} RETURNING {_SESSION_COLUMNS}", params).fetchall()
            return _session(rows[0]) if rows else None

        def update_then_read(conn: sqlite3.Connection) -> Session | None:
            if conn.execute(update, params).rowcount != 1:
                return None
            return _session(conn.execute(_SELECT_SESSION, (sid,)).fetchall()[0])

        return _write_transaction(conn, update_then_read)

    async def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, except_sid: str | None = None
    ) -> list[str]:
        params = {"user_id": user_id, "now": now, "reason": reason, "except_sid": except_sid}
        update = (
            "UPDATE sessions SET revoked_at = :now, revoked_reason = :reason "
            f"WHERE {_USER_SESSIONS_TO_REVOKE}"
        )

        def revoke(conn: sqlite3.Connection) -> list[str]:
            if self.use_returning:
                rows = conn.execute(f"{update} RETURNING rowid, sid", params).fetchall()
            else:
                select = f"SELECT rowid, sid FROM sessions WHERE {_USER_SESSIONS_TO_REVOKE}"

                def select_then_update(conn: sqlite3.Connection) -> list[Any]:
                    selected = conn.execute(select, params).fetchall()
                    conn.execute(update, params)
                    return selected

                rows = _write_transaction(conn, select_then_update)
            # In creation order, like the memory store (RETURNING's order is unspecified).
            return [sid for _, sid in sorted(rows)]

        return await self._run(revoke)

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


class _ConnectionThread:
    """One thread that runs jobs in order and hands each result to the caller's event loop.

    A bare thread and a ``SimpleQueue``: half the cost per call of ``run_in_executor``
    on a one-worker ``ThreadPoolExecutor`` (measured in docs/dependencies.md), which
    matters when the job itself is a 60 µs UPDATE.
    """

    __slots__ = ("_jobs",)

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # A daemon: a store nobody closed must not keep the interpreter alive. Killing it
        # at exit is safe: SQLite commits atomically or not at all.
        threading.Thread(target=_serve, args=(self._jobs,), name=name, daemon=True).start()

    def run(self, job: Callable[[], T], group: _Grouping | None = None) -> asyncio.Future[T]:
        """Queue ``job``; with ``group``, the job may instead run as part of a group."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, job, group))
        return future

    def stop(self) -> None:
        """Let the thread end once the jobs queued so far are done."""
        self._jobs.put(None)


_Outcome = tuple[Any, BaseException | None]
#: How a job may run in a group: the group runner (``SQLiteStore._run_group``) and the
#: job's statement, a function of the connection.
_Grouping = tuple[
    Callable[[Sequence[Callable[[sqlite3.Connection], Any]]], "list[_Outcome] | None"],
    Callable[[sqlite3.Connection], Any],
]
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any], _Grouping | None]


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    # A job taken from the queue while gathering a group that cannot join it; runs next.
    held: list[_Job | None] = []
    while (job := held.pop() if held else jobs.get()) is not None:
        group = [job]
        grouping = job[3]
        del job
        if grouping is not None:
            # Only what is queued already: nothing waits for a group to fill.
            # This thread is the queue's only consumer: not empty means get_nowait succeeds.
            while len(group) < _MAX_GROUP and not jobs.empty():
                follower = jobs.get_nowait()
                if follower is None or follower[3] is None or follower[3][0] != grouping[0]:
                    held.append(follower)
                    del follower
                    break
                group.append(follower)
                del follower
        _deliver(group, _run_jobs(group, grouping))
        # Hold no job (its closure holds the store) while waiting for the next one.
        del group, grouping


def _deliver(group: list[_Job], outcomes: list[_Outcome]) -> None:
    for job, outcome in zip(group, outcomes, strict=True):
        loop, future = job[0], job[1]
        # RuntimeError: the loop closed meanwhile, so nobody is waiting for this result.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, *outcome)


def _run_jobs(group: list[_Job], grouping: _Grouping | None) -> list[_Outcome]:
    """Run the jobs, as one transaction when there are several; their outcomes, in order."""
    if len(group) > 1 and grouping is not None:
        run_group = grouping[0]
        try:
            outcomes = run_group([job[3][1] for job in group if job[3] is not None])
        except BaseException as exc:  # unexpected: every caller hears of it
            outcomes = [(None, exc)] * len(group)
        if outcomes is not None:
            return outcomes
    return [_run_one(job[2]) for job in group]


def _run_one(run: Callable[[], Any]) -> _Outcome:
    try:
        return (run(), None)
    except BaseException as exc:  # handed to the awaiting coroutine, not lost
        return (None, exc)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the caller gave up waiting; the job ran (and committed) all the same
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


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
        _rollback_quietly(conn)
        raise
    return result


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        # The error being handled says more; a connection that cannot roll back has
        # lost its transaction already (SQLite rolls back on I/O and full-disk errors).
        logger.debug("ROLLBACK failed after an SQLite error", exc_info=True)


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
    # float(): RETURNING hands back a REAL that holds a whole number as an int.
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
