"""The database-wide purge lock: which one of many instances purges dead sessions.

A session-level advisory lock, held on a connection of its own (not a pooled one, which
must keep no session state) until released, until the store closes, or until that
connection ends; then another instance can take it over. Purging stays correct without
it (each batch skips locked rows); the lock only spares the database duplicate work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .errors import translate
from .pool import close_quietly
from .statements import PURGE_LOCK

if TYPE_CHECKING:
    from .pool import Connection

__all__ = ["PurgeLock"]


class PurgeLock:
    """The purge lock as one store holds it, or not.

    ``connect`` opens a connection that can hold a session (the store's ``session_dsn``);
    ``close_within`` bounds how long giving the lock up may take.
    """

    def __init__(self, connect: Callable[[], Awaitable[Connection]], close_within: float) -> None:
        self._connect = connect
        self._close_within = close_within
        self._conn: Connection | None = None

    async def try_take(self) -> bool:
        """Whether this store holds the lock now, taking it if it is free."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return True
        self._conn = None
        if conn is not None:
            conn.terminate()
        with translate("taking the purge lock"):
            conn = await self._connect()
            try:
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", PURGE_LOCK)
            except BaseException:
                conn.terminate()
                raise
            if got is not True:
                await close_quietly(conn, self._close_within)
                return False
        self._conn = conn
        return True

    async def release(self) -> None:
        """Give the lock up, if this store holds it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            # Ending the session releases its advisory locks.
            await close_quietly(conn, self._close_within)
