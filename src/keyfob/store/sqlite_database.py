"""One SQLite file as the SQLite store uses it: its connections, its thread, its errors.

Threading. A store owns one connection, used by one piece of work at a time in the
order it arrived (:mod:`keyfob.store.sqlite_runner`): jobs (reads, transactions of
several statements) on the store's own thread, single-statement writes in groups, their
statements on the event loop and their COMMIT on the thread. The event loop never waits
for a disk sync or another process's lock. Several stores on one file, in one process or
in many, are serialised by SQLite's locks. A second, read-only connection serves the
revocation marker on the event loop.

Durability. WAL journal; ``synchronous=FULL`` (the default) syncs the log on every
commit, so a rotation acknowledged to a caller survives a crash of the process and a
power loss; ``NORMAL`` survives a crash of the process only and saves an fsync.

Errors. Every ``sqlite3`` error becomes :class:`~keyfob.exceptions.StoreUnavailable`
(nothing was changed: the statement or transaction rolled back), except a corrupt or
foreign file or a refused write such as a duplicate sid
(:class:`~keyfob.exceptions.StoreIntegrityError`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..exceptions import KeyfobError, StoreIntegrityError, StoreUnavailable
from ..settings.model import SqliteSync
from .migrations import (
    LEDGER_DDL,
    LEDGER_SELECT,
    Migration,
    ledger_insert,
    load_migrations,
    pending_migrations,
)
from .sqlite_runner import ConnectionRunner, Operation, rollback_quietly

__all__ = ["SQLiteDatabase", "Synchronous", "execute", "execute_many", "write_transaction"]

logger = logging.getLogger("keyfob")

T = TypeVar("T")
#: PRAGMA synchronous: "full" survives power loss (the default), "normal" does not.
Synchronous = SqliteSync


class SQLiteDatabase:
    """The connections to one SQLite file, the thread that uses them, and their errors.

    ``busy_timeout`` (seconds) is how long work waits for another connection's write
    lock before failing with :class:`StoreUnavailable`.
    """

    def __init__(self, path: Path, *, synchronous: Synchronous, busy_timeout: float) -> None:
        self.path = path
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._migrations: list[Migration] = load_migrations("sqlite")
        self._runner: ConnectionRunner | None = None
        self._stop_runner: Callable[[], object] = _nothing
        # Used by one piece of work at a time (the runner sees to it), on either thread.
        self._conn: sqlite3.Connection | None = None
        #: A second, read-only connection for the revocation marker, used on the event
        #: loop; None while the database is closed.
        self.marker_connection: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Connect (WAL, ``synchronous``, ``busy_timeout``, foreign keys) and migrate."""
        await self.migrate()

    async def migrate(self) -> list[str]:
        """Apply pending migrations (connecting first if needed); return their names."""
        await self._ensure_connected()
        return await self.run(self._migrate)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Detach it here, on the loop, so no marker read can race the close on the thread.
        marker_conn, self.marker_connection = self.marker_connection, None
        try:
            await runner.run(lambda: self._guarded(lambda: self._disconnect(marker_conn), None))
        finally:
            self._stop_runner()

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` with the connection, on the store's thread."""
        runner = self._runner
        if runner is None:
            raise StoreUnavailable("the SQLite store is not open")
        return await runner.run(lambda: self._guarded(operation, self._require_connection))

    async def write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation``, a write that opens no transaction of its own, in the next
        group of writes (statements on the event loop, COMMIT on the thread;
        :mod:`keyfob.store.sqlite_runner`).

        It must be quick: a statement or two on one row, looked up by key.
        """
        runner = self._runner
        if runner is None:
            raise StoreUnavailable("the SQLite store is not open")
        result: T = await runner.write(operation)
        return result

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
            lambda conn: write_transaction(conn, operation), self._require_connection
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
        self.marker_connection = marker

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

        applied_now = write_transaction(conn, apply)
        for migration in applied_now:
            logger.info("applied SQLite migration %s to %s", migration.name, self.path)
        return [m.name for m in applied_now]


def _nothing() -> None:
    return None


def execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> None:
    # Run to completion and drop the cursor here: a cursor must not leave the thread.
    conn.execute(sql, params).close()


def execute_many(conn: sqlite3.Connection, sql: str, params: Sequence[Sequence[Any]]) -> None:
    conn.executemany(sql, params).close()


def write_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
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
