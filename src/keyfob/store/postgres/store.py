"""The PostgreSQL store itself: its settings, its life cycle and the domain operations.

It borrows connections from :mod:`.pool`, hears of revocations through :mod:`.listener`,
takes the purge lock with :mod:`.purge_lock`, migrates with :mod:`.schema`, reads its
URL with :mod:`.options` and sends the SQL of :mod:`.statements`; every driver error
becomes keyfob's own through :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import asyncpg

from ...core.authorization_codes import AuthorizationCode
from ...core.clients import Client
from ...core.keys import KeyRecord
from ...core.models import EventKind, SecurityEvent, Session, User
from ...exceptions import (
    ClientExists,
    ConfigurationError,
    KeyfobError,
    StoreIntegrityError,
    StoreUnavailable,
    UserExists,
)
from .. import rows
from ..migrations import Migration, load_migrations
from ..protocol import RevokedSession
from . import statements as sql
from .errors import translate
from .listener import RevocationListener
from .options import masked, milliseconds, names_application, session_url, split_url
from .pool import ConnectionPool
from .purge_lock import PurgeLock
from .schema import apply_migrations
from .webhooks import PostgresWebhooks

if TYPE_CHECKING:
    from ...settings import Settings
    from .pool import Connection

__all__ = ["PostgresStore"]

logger = logging.getLogger("keyfob")

#: How much longer than ``statement_timeout`` the client waits for an answer: past it,
#: the server or the network stopped answering altogether.
_CLIENT_MARGIN: Final = 1.0
#: Connections the pool opens with: enough for the start-up reads to run side by side.
_START_CONNECTIONS: Final = 2


class PostgresStore(PostgresWebhooks):
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
            raise ConfigurationError(f"not a PostgreSQL URL: {masked(dsn)!r}")
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
        self.server_settings: dict[str, str] = {
            **({} if names_application(dsn) else {"application_name": "keyfob"}),
            "statement_timeout": str(milliseconds(self.statement_timeout)),
            "lock_timeout": str(milliseconds(self.lock_timeout)),
            **(server_settings or {}),
        }
        self._migrations: list[Migration] = load_migrations("postgresql")
        self._pool: ConnectionPool | None = None
        self._listener = RevocationListener(
            lambda: self._connect(self.session_dsn),
            keepalive=self.listener_keepalive,
            ping_timeout=self.connect_timeout,
        )
        self._purge_lock = PurgeLock(lambda: self._connect(self.session_dsn), self.connect_timeout)
        self._opening = asyncio.Lock()
        self._migrated = False

    @classmethod
    def from_url(cls, url: str, *, settings: Settings | None = None) -> PostgresStore:
        """``postgresql://user:password@host:5432/db?pool_max=20&statement_timeout=5``.

        The query's options are read as :mod:`keyfob.store.postgres.options` describes.
        ``settings.store_session_url`` is the session URL when the store URL names none.
        """
        dsn, options = split_url(url)
        if settings is not None and settings.store_session_url and "session_dsn" not in options:
            options["session_dsn"] = session_url(settings.store_session_url)
        return cls(dsn, **options)

    def __repr__(self) -> str:
        return f"PostgresStore({masked(self.dsn)!r})"

    @property
    def max_write_delay(self) -> float:
        """The longest a write takes from its caller reading the clock to its commit.

        Waiting for a pooled connection and then opening one (``connect_timeout`` each),
        then the statement (``statement_timeout``, and the client's margin past it, which
        also covers the commit). Unbounded (``inf``) when ``statement_timeout`` is 0. A
        write the client gave up on (:class:`StoreUnavailable`) is not covered: the server
        may still commit it later.
        """
        if not self.statement_timeout:
            return math.inf
        return 2 * self.connect_timeout + self.statement_timeout + _CLIENT_MARGIN

    # connection lifecycle

    async def open(self) -> None:
        """Connect the pool, apply pending migrations and start the revocation listener.

        The pool and the listener connect side by side: each step is a round trip or
        two, and a database 100 ms away makes every sequential one felt at start-up
        (docs/scaling.md, bench/startup_remote_pg.py). If any of it fails, a store this
        call started connecting is left closed again.
        """
        async with self._opening:
            was_open = self._pool is not None
            try:
                await _all(self.migrate(), self._listener.start())
            except BaseException:
                if not was_open:
                    await self.close()
                raise

    async def migrate(self) -> list[str]:
        """Apply pending migrations (connecting first if needed); return their names.

        A store that has brought the schema up to date does not check it again.
        """
        await self._ensure_pool()
        if self._migrated:
            return []
        async with self._connection("migrating") as conn:
            applied_now = await apply_migrations(
                conn, self._migrations, statement_timeout=self.migration_timeout
            )
        self._migrated = True
        for migration in applied_now:
            logger.info("applied PostgreSQL migration %s", migration.name)
        return [m.name for m in applied_now]

    async def close(self) -> None:
        """Stop the listener, give up the purge lock and close every connection."""
        await self._listener.close(within=self.connect_timeout)
        await self.release_purge_lock()
        self._migrated = False  # reopened, it checks the schema again
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(within=self.connect_timeout)

    async def _ensure_pool(self) -> None:
        if self._pool is not None:
            return
        pool = ConnectionPool(lambda: self._connect(self.dsn), self.pool_max)
        with translate("connecting"):
            # At least two (when pool_max allows): the first reads at start-up (signing
            # keys, recent revocations) run side by side, not one after the other.
            await pool.fill(min(self.pool_max, max(self.pool_min, _START_CONNECTIONS)))
        if self._pool is not None:  # another task opened the store meanwhile
            await pool.close(within=self.connect_timeout)
            return
        self._pool = pool

    async def _connect(self, dsn: str) -> Connection:
        return await asyncpg.connect(
            dsn,
            timeout=self.connect_timeout,
            # The client's own limit, a little past the server's: it catches a server or
            # network that stopped answering altogether.
            command_timeout=(
                self.statement_timeout + _CLIENT_MARGIN if self.statement_timeout else None
            ),
            statement_cache_size=self.statement_cache_size,
            server_settings=self.server_settings,
        )

    @contextlib.asynccontextmanager
    async def _connection(self, doing: str = "a query") -> AsyncIterator[Connection]:
        """Borrow a pooled connection; errors become StoreUnavailable."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        with translate(doing):
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

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return await conn.fetch(query, *args)

    async def _fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        async with self._connection() as conn:
            return await conn.fetchrow(query, *args)

    async def _fetchval(self, query: str, *args: object) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(query, *args)

    async def _execute(self, query: str, *args: object) -> str:
        async with self._connection() as conn:
            return await conn.execute(query, *args)

    # sessions

    async def create_session(self, session: Session) -> None:
        await self._execute(sql.INSERT_SESSION, *rows.session_values(session))

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
        # time.time(): the wall clock the server's clock_timestamp() is compared with.
        args: tuple[object, ...] = (
            sid,
            counter,
            secret_hash,
            float(now),
            float(idle_ttl),
            time.time(),
        )
        if client_id is None:
            row = await self._fetchrow(sql.ROTATE, *args)
        else:
            row = await self._fetchrow(sql.ROTATE_FOR_CLIENT, *args, client_id)
        return None if row is None else rows.session(row)

    async def get_session(self, sid: str) -> Session | None:
        row = await self._fetchrow(sql.SELECT_SESSION, sid)
        return None if row is None else rows.session(row)

    async def revoke_session(
        self, sid: str, *, now: float, reason: str, user_id: str | None = None
    ) -> Session | None:
        row = await self._fetchrow(sql.REVOKE, sid, float(now), reason, user_id)
        return None if row is None else rows.session(row)

    async def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, except_sid: str | None = None
    ) -> list[str]:
        found = await self._fetch(sql.REVOKE_USER, user_id, float(now), reason, except_sid)
        # In creation order, like the memory store (RETURNING's order is unspecified).
        return [str(sid) for _, sid in sorted((int(r[0]), r[1]) for r in found)]

    async def list_sessions(self, user_id: str, *, now: float) -> list[Session]:
        found = await self._fetch(sql.LIST_SESSIONS, user_id, float(now))
        return [rows.session(row) for row in found]

    async def revoked_since(self, since: float, *, now: float) -> list[RevokedSession]:
        found = await self._fetch(sql.REVOKED_SINCE, float(since), float(now))
        return [RevokedSession(r[0], r[1], r[2]) for r in found]

    async def purge_sessions(self, *, now: float, revoked_before: float, limit: int) -> int:
        status = await self._execute(sql.PURGE, float(now), float(revoked_before), max(limit, 0))
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

    async def count_sessions(self) -> int:
        return int(await self._fetchval(sql.COUNT_SESSIONS))

    def revocation_marker(self) -> object:
        """A number bumped by every revocation notification and every (re)connection of
        the listener. Reading it does no I/O.

        Notifications arrive on a connection of their own, so another instance's
        revocation moves the marker a moment (milliseconds) after that instance's call
        returns, not at the same instant. While the listener is cut off the marker
        stands still; it moves when the listener is back, since it may have missed some.
        """
        return self._listener.marker

    async def try_lock_purge(self) -> bool:
        """Whether this store holds the database-wide purge lock, taking it if it is free.

        For a background purge task shared by several instances: the one that gets
        ``True`` purges. The lock is a session-level advisory lock on a connection of its
        own, held until :meth:`release_purge_lock`, :meth:`close`, or the connection's
        end (then another instance takes over). Purging stays correct without it (batches
        skip locked rows); the lock only spares the database duplicate work.
        """
        return await self._purge_lock.try_take()

    async def release_purge_lock(self) -> None:
        """Give up the purge lock, if this store holds it."""
        await self._purge_lock.release()

    # users

    async def create_user(self, user: User) -> None:
        try:
            await self._execute(
                sql.INSERT_USER,
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
                and cause.constraint_name == sql.USERNAME_CONSTRAINT
            ):
                raise UserExists("that username is already taken") from None
            raise

    async def get_user(self, user_id: str) -> User | None:
        row = await self._fetchrow(sql.SELECT_USER, user_id)
        return None if row is None else rows.user(row)

    async def get_user_by_name(self, username: str) -> User | None:
        row = await self._fetchrow(sql.SELECT_USER_BY_NAME, username.casefold())
        return None if row is None else rows.user(row)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._execute(sql.SET_PASSWORD_HASH, user_id, password_hash)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        found = await self._fetch(sql.LIST_USERS, max(limit, 0), max(offset, 0))
        return [rows.user(row) for row in found]

    # events

    async def record_event(self, event: SecurityEvent) -> None:
        await self._execute(
            sql.INSERT_EVENT,
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
        given = rows.event_filters(kind=kind, user_id=user_id, sid=sid, before_id=before_id)
        filters = [column for column, _ in given]
        params = [value for _, value in given]
        found = await self._fetch(sql.list_events(filters), *params, max(limit, 0))
        return [rows.event(row) for row in found]

    # signing keys

    async def load_keys(self) -> list[KeyRecord]:
        return [rows.key(row) for row in await self._fetch(sql.LOAD_KEYS)]

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
            await conn.executemany(sql.SAVE_KEY, params)

    async def delete_keys(self, kids: Sequence[str]) -> None:
        if kids:
            await self._execute(sql.DELETE_KEYS, list(kids))

    # clients

    async def create_client(self, client: Client) -> None:
        try:
            await self._execute(sql.INSERT_CLIENT, *rows.client_values(client))
        except StoreIntegrityError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, asyncpg.UniqueViolationError)
                and cause.constraint_name == sql.CLIENT_ID_CONSTRAINT
            ):
                raise ClientExists(f"the client id {client.client_id!r} is taken") from None
            raise

    async def get_client(self, client_id: str) -> Client | None:
        row = await self._fetchrow(sql.SELECT_CLIENT, client_id)
        return None if row is None else rows.client(row)

    async def list_clients(self) -> list[Client]:
        return [rows.client(row) for row in await self._fetch(sql.LIST_CLIENTS)]

    async def delete_client(self, client_id: str) -> bool:
        status = await self._execute(sql.DELETE_CLIENT, client_id)
        return status != "DELETE 0"

    async def set_client_secret_hash(self, client_id: str, secret_hash: bytes) -> bool:
        status = await self._execute(sql.SET_CLIENT_SECRET_HASH, client_id, secret_hash)
        return status != "UPDATE 0"

    async def use_assertion_id(
        self, client_id: str, jti: str, *, expires_at: float, now: float
    ) -> bool:
        async with self._connection("recording a client assertion") as conn, conn.transaction():
            await conn.execute(sql.FORGET_ASSERTIONS, float(now))
            used = await conn.fetchval(
                sql.USE_ASSERTION, client_id, jti, float(expires_at), float(now)
            )
        return used is not None

    # authorization codes

    async def create_authorization_code(self, code: AuthorizationCode) -> None:
        await self._execute(sql.INSERT_CODE, *rows.code_values(code))

    async def get_authorization_code(self, code_hash: bytes) -> AuthorizationCode | None:
        row = await self._fetchrow(sql.SELECT_CODE, code_hash)
        return None if row is None else rows.code(row)

    async def use_authorization_code(
        self, code_hash: bytes, *, now: float, sid: str | None
    ) -> bool:
        used = await self._fetchval(sql.USE_CODE, code_hash, float(now), sid)
        return used is not None

    async def purge_authorization_codes(self, *, expired_before: float, limit: int) -> int:
        status = await self._execute(sql.PURGE_CODES, float(expired_before), max(limit, 0))
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"


async def _all(*steps: Awaitable[object]) -> None:
    """Run ``steps`` side by side; on the first failure cancel the rest and raise it."""
    try:
        async with asyncio.TaskGroup() as group:
            for step in steps:
                group.create_task(_awaited(step))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def _awaited(step: Awaitable[object]) -> None:
    await step
