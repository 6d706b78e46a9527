"""The PostgreSQL store: keyfob's production store (spec §6), shared by many instances.

Connections. A pool of asyncpg connections (``pool_min`` opened up front, up to
``pool_max`` on demand) that carry ``statement_timeout`` and ``lock_timeout``, so no call
waits on the server for long: a query the server cancels, a lock it cannot get, a
refused or dropped connection and a client-side timeout all become
:class:`~keyfob.exceptions.StoreUnavailable`. A connection lost while PostgreSQL
restarts is replaced on its next use, so the store recovers by itself, without being
reopened.

One round trip per refresh. ``rotate`` is one ``UPDATE … RETURNING`` outside any
explicit transaction (spec §3): under READ COMMITTED, concurrent updates of the same row
queue on its row lock and each re-checks the ``WHERE`` against the winner's version, so of
callers presenting the same counter exactly one matches, on whichever instance. asyncpg
prepares each statement once per connection and keeps it. The pool is this module's own
(:class:`_Pool`), not asyncpg's: asyncpg's sends a reset query on every release (a
second round trip per refresh) and, even without it, costs as much client time per
borrow as the rotation itself (bench/pg_driver_compare.py). It can be small because no
pooled connection keeps session state (nothing here runs ``SET``, only ``SET LOCAL``;
``LISTEN`` and session advisory locks live on connections of their own), and because a
connection that comes back broken or inside a transaction is dropped rather than
repaired.

Revocations across instances. A trigger (migration 0001) sends ``NOTIFY
keyfob_revocations, '<sid>'`` in the transaction of every revocation, whoever makes it.
Each store keeps one listener connection outside the pool; a notification, and every
(re)connection of the listener (it may have missed some), bumps the number returned by
:meth:`PostgresStore.revocation_marker`. The listener reconnects with a capped backoff
when PostgreSQL comes back.

Migrations. Applied on :meth:`~PostgresStore.open` in one transaction holding a
transaction-scoped advisory lock, so instances starting together apply each migration
once and the others wait for it.

PgBouncer. In transaction mode, prepared statements must not be cached across
transactions: add ``statement_cache_size=0`` to the URL. ``LISTEN`` needs a session:
give the connections that need a session of their own (the listener, the purge lock)
a direct ``session_dsn``, or a session-mode pool. PgBouncer also refuses unknown startup
parameters: list ``statement_timeout`` and ``lock_timeout`` in its
``ignore_startup_parameters`` and set them on the role instead
(``ALTER ROLE keyfob SET statement_timeout = '5s'``).
"""

# S608 flags every f-string that builds SQL. Here they only splice this module's own
# column lists and clauses together; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ...core.keys import KeyRecord
from ...core.models import DeviceInfo, EventKind, SecurityEvent, Session, User
from ...exceptions import (
    ConfigurationError,
    KeyfobError,
    StoreIntegrityError,
    StoreUnavailable,
    UserExists,
)
from ...settings import parse_duration
from ..migrations import (
    LEDGER_DDL,
    LEDGER_SELECT,
    Migration,
    ledger_insert,
    load_migrations,
    pending_migrations,
)
from ..protocol import RevokedSession

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    from ...settings import Settings

    #: A connection of our own or one lent by the pool: the same API.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

__all__ = ["REVOCATION_CHANNEL", "PostgresStore"]

logger = logging.getLogger("keyfob")

#: The channel every revocation is announced on; the payload is the sid.
REVOCATION_CHANNEL: Final = "keyfob_revocations"

# Advisory lock keys: "keyfob" in ASCII, then a number per purpose. One keyspace for the
# whole database cluster, so the prefix keeps clear of other applications' locks.
_MIGRATION_LOCK: Final = (0x6B6579666F62 << 16) | 1
_PURGE_LOCK: Final = (0x6B6579666F62 << 16) | 2

#: Errors that mean "PostgreSQL cannot serve this now": the connection is refused, lost
#: or closed, the server is starting or stopping, out of connections, or cancelled the
#: statement (statement_timeout) or gave up on a lock (lock_timeout). asyncio's
#: TimeoutError (a client-side timeout) is an OSError since Python 3.11.
_UNAVAILABLE: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

_SESSION_COLUMNS = (
    "sid, user_id, client_id, scope, secret_hash, counter, created_at, last_used_at, "
    "rotated_at, idle_expires_at, absolute_expires_at, user_agent, ip, revoked_at, "
    "revoked_reason"
)
_INSERT_SESSION = (
    f"INSERT INTO sessions ({_SESSION_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)
_SELECT_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE sid = $1"

# The one conditional update of spec §3, one statement and one round trip. `> $4`
# mirrors Session.is_expired (now >= deadline means expired).
_ROTATE = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = $4, last_used_at = $4, "
    "idle_expires_at = LEAST($4 + $5, absolute_expires_at) "
    "WHERE sid = $1 AND counter = $2 AND secret_hash = $3 AND revoked_at IS NULL "
    "AND idle_expires_at > $4 AND absolute_expires_at > $4 "
    f"RETURNING {_SESSION_COLUMNS}"
)
# The trigger sessions_notify_revoked announces each of these revocations.
_REVOKE = (
    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 "
    "WHERE sid = $1 AND revoked_at IS NULL AND ($4::text IS NULL OR user_id = $4) "
    f"RETURNING {_SESSION_COLUMNS}"
)
_REVOKE_USER = (
    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 "
    "WHERE user_id = $1 AND revoked_at IS NULL AND ($4::text IS NULL OR sid <> $4) "
    "RETURNING seq, sid"
)
_LIST_SESSIONS = (
    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL "
    "AND idle_expires_at > $2 AND absolute_expires_at > $2 ORDER BY created_at DESC, seq"
)
_REVOKED_SINCE = (
    "SELECT sid, revoked_at, absolute_expires_at FROM sessions "
    "WHERE revoked_at >= $1 AND absolute_expires_at > $2 ORDER BY seq"
)
# A batch is chosen and locked in one step, skipping rows another transaction holds (a
# refresh in flight): the purge never waits for a refresh, and a refresh waits at most
# for one batch's rows, which are expired or revoked and so could not rotate anyway.
_PURGE = (
    "DELETE FROM sessions WHERE sid = ANY(ARRAY("
    "SELECT sid FROM sessions "
    "WHERE LEAST(idle_expires_at, absolute_expires_at) <= $1 OR revoked_at < $2 "
    "LIMIT $3 FOR UPDATE SKIP LOCKED))"
)
_USER_COLUMNS = "id, username, password_hash, created_at"
_INSERT_USER = (
    "INSERT INTO users (id, username, username_key, password_hash, created_at) "
    "VALUES ($1, $2, $3, $4, $5)"
)
_USERNAME_CONSTRAINT = "users_username_key_unique"
_LIST_USERS = (
    f"SELECT {_USER_COLUMNS} FROM users "
    'ORDER BY created_at, username COLLATE "C" LIMIT $1 OFFSET $2'
)
_EVENT_COLUMNS = "id, kind, at, user_id, sid, ip, detail"
_KEY_COLUMNS = (
    "kid, alg, public_jwk, private_encrypted, created_at, activates_at, retired_at, expires_at"
)
# An upsert keeps the row (and its seq, so its place among equal created_at).
_SAVE_KEY = (
    f"INSERT INTO signing_keys ({_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, public_jwk = excluded.public_jwk, "
    "private_encrypted = excluded.private_encrypted, created_at = excluded.created_at, "
    "activates_at = excluded.activates_at, retired_at = excluded.retired_at, "
    "expires_at = excluded.expires_at"
)

#: URL query parameters the store reads itself; any other is passed on to asyncpg.
_URL_OPTIONS = frozenset(
    {
        "pool_min",
        "pool_max",
        "statement_timeout",
        "lock_timeout",
        "connect_timeout",
        "statement_cache_size",
    }
)


class PostgresStore:
    """A :class:`keyfob.store.Store` in a PostgreSQL database, shared by many instances.

    ``statement_timeout`` and ``lock_timeout`` (seconds; 0 disables) bound how long the
    server works on, or waits for a lock for, one statement; ``connect_timeout`` bounds
    connecting and waiting for a free pooled connection. ``statement_cache_size=0``
    disables prepared-statement caching (PgBouncer in transaction mode). ``session_dsn``
    is where the connections that need a session of their own go, the revocation
    listener and the purge lock (default: ``dsn``). ``server_settings`` are extra session
    settings for every connection (``application_name`` and the like).
    """

    scheme = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        pool_min: int = 1,
        pool_max: int = 10,
        statement_timeout: float = 5.0,
        lock_timeout: float = 2.0,
        connect_timeout: float = 5.0,
        statement_cache_size: int = 100,
        session_dsn: str | None = None,
        server_settings: Mapping[str, str] | None = None,
        migration_timeout: float = 300.0,
        listener_keepalive: float = 10.0,
    ) -> None:
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError(f"not a PostgreSQL URL: {_masked(dsn)!r}")
        if pool_max < 1 or not 0 <= pool_min <= pool_max:
            raise ConfigurationError(
                f"the pool needs 0 <= pool_min <= pool_max and pool_max >= 1 "
                f"(got pool_min={pool_min}, pool_max={pool_max})"
            )
        for name, value in (
            ("statement_timeout", statement_timeout),
            ("lock_timeout", lock_timeout),
            ("migration_timeout", migration_timeout),
        ):
            if value < 0:
                raise ConfigurationError(f"{name} cannot be negative")
        if connect_timeout <= 0 or listener_keepalive <= 0:
            raise ConfigurationError("connect_timeout and listener_keepalive must be positive")
        if statement_cache_size < 0:
            raise ConfigurationError("statement_cache_size cannot be negative")
        self.dsn = dsn
        self.session_dsn = session_dsn or dsn
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.statement_timeout = float(statement_timeout)
        self.lock_timeout = float(lock_timeout)
        self.connect_timeout = float(connect_timeout)
        self.statement_cache_size = statement_cache_size
        self.migration_timeout = float(migration_timeout)
        self.listener_keepalive = float(listener_keepalive)
        # Named "keyfob" in pg_stat_activity, unless the URL names it (?application_name=).
        named = any(k == "application_name" for k, _ in parse_qsl(urlsplit(dsn).query))
        self.server_settings: dict[str, str] = {
            **({} if named else {"application_name": "keyfob"}),
            "statement_timeout": str(_ms(self.statement_timeout)),
            "lock_timeout": str(_ms(self.lock_timeout)),
            **(server_settings or {}),
        }
        self._migrations: list[Migration] = load_migrations("postgresql")
        self._pool: _Pool | None = None
        self._marker = 0
        self._listener: Connection | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._purge_conn: Connection | None = None
        self._opening = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, settings: Settings | None = None) -> PostgresStore:
        """``postgresql://user:password@host:5432/db?pool_max=20&statement_timeout=5``.

        The store reads ``pool_min``, ``pool_max``, ``statement_cache_size`` and the
        durations ``statement_timeout``, ``lock_timeout`` and ``connect_timeout``
        (seconds, or with a unit suffix: ``5``, ``0.5``, ``2s``) from the query; everything
        else (``sslmode``, ``application_name``, …) goes to asyncpg as is.
        ``settings`` is accepted for symmetry with the other stores; no setting
        changes how this store connects.
        """
        del settings
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigurationError(f"not a PostgreSQL URL: {_masked(url)!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _URL_OPTIONS}
        rest = [(k, v) for k, v in query if k not in _URL_OPTIONS]
        dsn = urlunsplit(parts._replace(query=urlencode(rest)))
        options: dict[str, Any] = {}
        for name in ("pool_min", "pool_max", "statement_cache_size"):
            if name in ours:
                try:
                    options[name] = int(ours[name])
                except ValueError:
                    raise ConfigurationError(
                        f"{name} in the store URL must be a whole number, not {ours[name]!r}"
                    ) from None
        for name in ("statement_timeout", "lock_timeout", "connect_timeout"):
            if name in ours:
                options[name] = parse_duration(ours[name])
        return cls(dsn, **options)

    def __repr__(self) -> str:
        return f"PostgresStore({_masked(self.dsn)!r})"

    # connection lifecycle

    async def open(self) -> None:
        """Connect the pool, apply pending migrations and start the revocation listener.

        If any of it fails, a store this call started connecting is left closed again.
        """
        async with self._opening:
            was_open = self._pool is not None
            try:
                await self._ensure_pool()
                await self.migrate()
                if self._listener_task is None:
                    conn = await self._connect_listener()
                    self._listener_task = asyncio.get_running_loop().create_task(
                        self._keep_listening(conn), name="keyfob-postgres-listener"
                    )
            except BaseException:
                if not was_open:
                    await self.close()
                raise

    async def migrate(self) -> list[str]:
        """Apply pending migrations (connecting first if needed); return their names."""
        await self._ensure_pool()
        async with self._connection() as conn:
            applied_now = await self._migrate(conn)
        for migration in applied_now:
            logger.info("applied PostgreSQL migration %s", migration.name)
        return [m.name for m in applied_now]

    async def close(self) -> None:
        """Stop the listener, give up the purge lock and close every connection."""
        task, self._listener_task = self._listener_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        listener, self._listener = self._listener, None
        if listener is not None:
            await _close_quietly(listener, self.connect_timeout)
        await self.release_purge_lock()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(within=self.connect_timeout)

    async def _ensure_pool(self) -> None:
        if self._pool is not None:
            return
        pool = _Pool(lambda: self._connect(self.dsn), self.pool_max)
        with self._translate("connecting"):
            await pool.fill(self.pool_min)
        if self._pool is not None:  # another task opened the store meanwhile
            await pool.close(within=self.connect_timeout)
            return
        self._pool = pool

    def _command_timeout(self) -> float | None:
        # The client's own limit, a little past the server's: it catches a server or
        # network that stopped answering altogether.
        return self.statement_timeout + 1.0 if self.statement_timeout else None

    async def _migrate(self, conn: Connection) -> list[Migration]:
        timeout = self.migration_timeout or None
        async with conn.transaction():
            # Migrations may take long; the advisory lock waits for another instance's.
            limit = _ms(self.migration_timeout)
            await conn.execute(
                f"SET LOCAL statement_timeout = {limit}; SET LOCAL lock_timeout = {limit}",
                timeout=timeout,
            )
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK, timeout=timeout)
            await conn.execute(LEDGER_DDL, timeout=timeout)
            rows = await conn.fetch(LEDGER_SELECT, timeout=timeout)
            todo = pending_migrations(self._migrations, {int(r[0]): str(r[1]) for r in rows})
            record = ledger_insert(["$1", "$2", "$3"])
            for migration in todo:
                # No parameters: asyncpg sends the file as one simple query, so a
                # file may hold many statements and dollar-quoted function bodies.
                await conn.execute(migration.sql, timeout=timeout)
                await conn.execute(
                    record, migration.version, migration.name, time.time(), timeout=timeout
                )
        return todo

    # errors and connections

    @contextlib.contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        """Turn driver, network and timeout errors into :class:`StoreUnavailable`."""
        try:
            yield
        except KeyfobError:
            raise
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise StoreIntegrityError(f"PostgreSQL refused a write ({doing}): {exc}") from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"PostgreSQL is unavailable ({doing}): {type(exc).__name__}: {exc}",
                retry_after=1,
            ) from exc

    @contextlib.asynccontextmanager
    async def _connection(self, doing: str = "a query") -> AsyncIterator[Connection]:
        """Borrow a pooled connection; errors become StoreUnavailable."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        with self._translate(doing):
            conn = await pool.acquire(within=self.connect_timeout)
            sound = True
            try:
                yield conn
            except (asyncpg.PostgresError, KeyfobError, TimeoutError, asyncio.CancelledError):
                # The server answered (an error is an answer), or the call was cancelled
                # or timed out: then asyncpg has asked the server to cancel the statement
                # and finishes that before the connection's next statement. Either way
                # the connection can serve the next caller, unless the error ended it.
                raise
            except BaseException:
                sound = False  # broken (InterfaceError, OSError, …): not worth a retry
                raise
            finally:
                pool.release(conn, sound=sound)

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return await conn.fetch(sql, *args)

    async def _fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        async with self._connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetchval(self, sql: str, *args: object) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, sql: str, *args: object) -> str:
        async with self._connection() as conn:
            return await conn.execute(sql, *args)

    # sessions

    async def create_session(self, session: Session) -> None:
        await self._execute(
            _INSERT_SESSION,
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

    async def rotate(
        self, sid: str, *, counter: int, secret_hash: bytes, now: float, idle_ttl: float
    ) -> Session | None:
        row = await self._fetchrow(_ROTATE, sid, counter, secret_hash, float(now), float(idle_ttl))
        return None if row is None else _session(row)

    async def get_session(self, sid: str) -> Session | None:
        row = await self._fetchrow(_SELECT_SESSION, sid)
        return None if row is None else _session(row)

    async def revoke_session(
        self, sid: str, *, now: float, reason: str, user_id: str | None = None
    ) -> Session | None:
        row = await self._fetchrow(_REVOKE, sid, float(now), reason, user_id)
        return None if row is None else _session(row)

    async def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, except_sid: str | None = None
    ) -> list[str]:
        rows = await self._fetch(_REVOKE_USER, user_id, float(now), reason, except_sid)
        # In creation order, like the memory store (RETURNING's order is unspecified).
        return [str(sid) for _, sid in sorted((int(r[0]), r[1]) for r in rows)]

    async def list_sessions(self, user_id: str, *, now: float) -> list[Session]:
        rows = await self._fetch(_LIST_SESSIONS, user_id, float(now))
        return [_session(row) for row in rows]

    async def revoked_since(self, since: float, *, now: float) -> list[RevokedSession]:
        rows = await self._fetch(_REVOKED_SINCE, float(since), float(now))
        return [RevokedSession(r[0], r[1], r[2]) for r in rows]

    async def purge_sessions(self, *, now: float, revoked_before: float, limit: int) -> int:
        status = await self._execute(_PURGE, float(now), float(revoked_before), max(limit, 0))
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

    async def count_sessions(self) -> int:
        return int(await self._fetchval("SELECT count(*) FROM sessions"))

    def revocation_marker(self) -> object:
        """A number bumped by every revocation notification and every (re)connection of
        the listener. Reading it does no I/O.

        Notifications arrive on a connection of their own, so another instance's
        revocation moves the marker a moment (milliseconds) after that instance's call
        returns, not at the same instant. While the listener is cut off the marker
        stands still; it moves when the listener is back, since it may have missed some.
        """
        return self._marker

    async def try_lock_purge(self) -> bool:
        """Whether this store holds the database-wide purge lock, taking it if it is free.

        For a background purge task shared by several instances: the one that gets
        ``True`` purges. The lock is a session-level advisory lock on a connection of its
        own, held until :meth:`release_purge_lock`, :meth:`close`, or the connection's
        end (then another instance takes over). Purging stays correct without it (batches
        skip locked rows); the lock only spares the database duplicate work.
        """
        conn = self._purge_conn
        if conn is not None and not conn.is_closed():
            return True
        self._purge_conn = None
        if conn is not None:
            conn.terminate()
        with self._translate("taking the purge lock"):
            conn = await self._connect(self.session_dsn)
            try:
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", _PURGE_LOCK)
            except BaseException:
                conn.terminate()
                raise
            if got is not True:
                await _close_quietly(conn, self.connect_timeout)
                return False
        self._purge_conn = conn
        return True

    async def release_purge_lock(self) -> None:
        """Give up the purge lock, if this store holds it."""
        conn, self._purge_conn = self._purge_conn, None
        if conn is not None:
            # Ending the session releases its advisory locks.
            await _close_quietly(conn, self.connect_timeout)

    # the revocation listener

    async def _connect(self, dsn: str) -> Connection:
        return await asyncpg.connect(
            dsn,
            timeout=self.connect_timeout,
            command_timeout=self._command_timeout(),
            statement_cache_size=self.statement_cache_size,
            server_settings=self.server_settings,
        )

    def _on_notification(self, _conn: object, _pid: int, _channel: str, _payload: object) -> None:
        self._marker += 1

    async def _connect_listener(self) -> Connection:
        with self._translate("listening for revocations"):
            conn = await self._connect(self.session_dsn)
            try:
                await conn.add_listener(REVOCATION_CHANNEL, self._on_notification)
            except BaseException:
                conn.terminate()
                raise
        self._listener = conn
        # Revocations made while nobody listened are unknown: make every reader resync.
        self._marker += 1
        return conn

    async def _keep_listening(self, conn: Connection) -> None:
        """Watch the listener connection; reconnect (with backoff) whenever it is lost.

        Runs until cancelled by :meth:`close`, which closes the current connection (a task
        cancelled before its first step never runs a ``finally`` of its own).
        """
        while True:
            try:
                await self._watch(conn)
            except Exception:  # the listener must not die quietly: log, then reconnect
                logger.exception("the PostgreSQL revocation listener failed; reconnecting")
            conn.terminate()
            self._listener = None
            conn = await self._reconnect_listener()

    async def _watch(self, conn: Connection) -> None:
        """Return when ``conn`` is lost: closed by the server, or silent to a ping."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not conn.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), timeout=self.listener_keepalive)
                return
            except TimeoutError:
                pass
            # Quiet for a while: make sure the server is still there (a dropped network
            # does not close the socket).
            try:
                await conn.execute("SELECT 1", timeout=self.connect_timeout)
            except _UNAVAILABLE:
                return

    async def _reconnect_listener(self) -> Connection:
        delay = 0.05
        while True:
            try:
                conn = await self._connect_listener()
            except StoreUnavailable as exc:
                logger.debug("revocation listener: reconnect failed: %s", exc)
            except Exception:  # keep trying whatever went wrong, but say what it was
                logger.exception("revocation listener: reconnect failed")
            else:
                logger.info("revocation listener reconnected to PostgreSQL")
                return conn
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    # users

    async def create_user(self, user: User) -> None:
        try:
            await self._execute(
                _INSERT_USER,
                user.id,
                user.username,
                user.username.casefold(),
                user.password_hash,
                float(user.created_at),
            )
        except StoreIntegrityError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, asyncpg.UniqueViolationError)
                and cause.constraint_name == _USERNAME_CONSTRAINT
            ):
                raise UserExists("that username is already taken") from None
            raise

    async def get_user(self, user_id: str) -> User | None:
        row = await self._fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
        return None if row is None else _user(row)

    async def get_user_by_name(self, username: str) -> User | None:
        row = await self._fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username_key = $1", username.casefold()
        )
        return None if row is None else _user(row)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        sql = "UPDATE users SET password_hash = $2 WHERE id = $1"
        await self._execute(sql, user_id, password_hash)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        rows = await self._fetch(_LIST_USERS, max(limit, 0), max(offset, 0))
        return [_user(row) for row in rows]

    # events

    async def record_event(self, event: SecurityEvent) -> None:
        await self._execute(
            "INSERT INTO events (kind, at, user_id, sid, ip, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            str(event.kind),
            float(event.at),
            event.user_id,
            event.sid,
            event.ip,
            event.detail,
        )

    async def list_events(
        self,
        *,
        limit: int = 100,
        kind: EventKind | None = None,
        user_id: str | None = None,
        sid: str | None = None,
        before_id: int | None = None,
    ) -> list[SecurityEvent]:
        # One statement text per combination of filters (at most 16, each prepared once):
        # each gets the plan for its own indexes.
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (
            ("kind =", None if kind is None else str(kind)),
            ("user_id =", user_id),
            ("sid =", sid),
            ("id <", before_id),
        ):
            if value is not None:
                params.append(value)
                clauses.append(f"{column} ${len(params)}")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(max(limit, 0))
        sql = f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ${len(params)}"
        rows = await self._fetch(sql, *params)
        return [_event(row) for row in rows]

    # signing keys

    async def load_keys(self) -> list[KeyRecord]:
        sql = f"SELECT {_KEY_COLUMNS} FROM signing_keys ORDER BY created_at, seq"
        rows = await self._fetch(sql)
        return [_key(row) for row in rows]

    async def save_keys(self, records: Sequence[KeyRecord]) -> None:
        params = [
            (
                r.kid,
                r.alg,
                r.public_jwk,
                r.private_encrypted,
                float(r.created_at),
                float(r.activates_at),
                None if r.retired_at is None else float(r.retired_at),
                None if r.expires_at is None else float(r.expires_at),
            )
            for r in records
        ]
        if not params:
            return
        async with self._connection("saving signing keys") as conn, conn.transaction():
            await conn.executemany(_SAVE_KEY, params)

    async def delete_keys(self, kids: Sequence[str]) -> None:
        if kids:
            await self._execute("DELETE FROM signing_keys WHERE kid = ANY($1::text[])", list(kids))


class _Pool:
    """Up to ``max_size`` connections, lent one caller at a time, most recently used first.

    Borrowing an idle connection costs no I/O and no extra trip through the event loop.
    A connection is made when none is idle and fewer than ``max_size`` exist; past that,
    callers wait (up to the acquire timeout) for one to come back. A connection returned
    broken, found closed, or inside a transaction is terminated and replaced on demand:
    there is no session state to repair, so none is. (A cancelled call's connection is
    sound: asyncpg completes the cancellation before that connection's next statement.)
    """

    def __init__(self, connect: Callable[[], Awaitable[Connection]], max_size: int) -> None:
        self._connect = connect
        self._idle: list[Connection] = []
        self._in_use: set[Connection] = set()
        #: One permit per connection that may be lent: idle ones do not hold a permit.
        self._permits = asyncio.Semaphore(max_size)
        self._closed = False
        #: Set when the pool is closed and the last lent connection has come back.
        self._drained = asyncio.Event()

    @property
    def size(self) -> int:
        """Connections open now, idle or lent."""
        return len(self._idle) + len(self._in_use)

    async def fill(self, count: int) -> None:
        """Open ``count`` idle connections (all of them, or none: the error is raised)."""
        results = await asyncio.gather(
            *(self._connect() for _ in range(count)), return_exceptions=True
        )
        opened = [r for r in results if not isinstance(r, BaseException)]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            for conn in opened:
                conn.terminate()
            raise failed[0]
        self._idle.extend(opened)

    async def acquire(self, within: float) -> Connection:
        """A connection, waiting at most ``within`` seconds for one to come back."""
        if self._closed:
            raise asyncpg.InterfaceError("the connection pool is closed")
        if self._permits.locked():
            async with asyncio.timeout(within):
                await self._permits.acquire()
        else:
            await self._permits.acquire()  # free: returns at once, no await happens
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    break
            else:
                conn = await self._connect()
        except BaseException:
            self._permits.release()
            raise
        self._in_use.add(conn)
        return conn

    def release(self, conn: Connection, *, sound: bool) -> None:
        self._in_use.discard(conn)
        if self._closed and not self._in_use:
            self._drained.set()
        if sound and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            self._idle.append(conn)
        else:
            # Broken, left inside a transaction, or the pool is closing: drop it (the
            # server ends the session and rolls back whatever it had open).
            conn.terminate()
        self._permits.release()

    async def close(self, within: float) -> None:
        """Close the idle connections; wait up to ``within`` seconds for lent ones to come
        back, then drop those still out."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close_quietly(conn, within) for conn in idle))
        if self._in_use:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._drained.wait()
        for conn in list(self._in_use):
            conn.terminate()


async def _close_quietly(conn: Connection, within: float) -> None:
    try:
        await conn.close(timeout=within)
    except (TimeoutError, *_UNAVAILABLE):
        conn.terminate()


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _masked(url: str) -> str:
    """The URL with its password hidden, for messages and repr."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "postgresql://…"


def _session(row: asyncpg.Record) -> Session:
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
    ) = row.values()
    return Session(
        sid=sid,
        user_id=user_id,
        client_id=client_id,
        scope=scope,
        secret_hash=bytes(secret_hash),
        counter=counter,
        created_at=created_at,
        last_used_at=last_used_at,
        rotated_at=rotated_at,
        idle_expires_at=idle_expires_at,
        absolute_expires_at=absolute_expires_at,
        device=DeviceInfo(user_agent=user_agent, ip=ip),
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
    )


def _user(row: asyncpg.Record) -> User:
    user_id, username, password_hash, created_at = row.values()
    return User(id=user_id, username=username, password_hash=password_hash, created_at=created_at)


def _event(row: asyncpg.Record) -> SecurityEvent:
    event_id, kind, at, user_id, sid, ip, detail = row.values()
    try:
        event_kind = EventKind(kind)
    except ValueError:
        raise StoreIntegrityError(f"event {event_id} has an unknown kind {kind!r}") from None
    return SecurityEvent(
        kind=event_kind, at=at, user_id=user_id, sid=sid, ip=ip, detail=detail, id=event_id
    )


def _key(row: asyncpg.Record) -> KeyRecord:
    kid, alg, public_jwk, private_encrypted, created_at, activates_at, retired_at, expires_at = (
        row.values()
    )
    return KeyRecord(
        kid=kid,
        alg=alg,
        public_jwk=public_jwk,
        private_encrypted=bytes(private_encrypted),
        created_at=created_at,
        activates_at=activates_at,
        retired_at=retired_at,
        expires_at=expires_at,
    )
