"""The PostgreSQL store's connection pool: asyncpg connections lent one caller at a time.

The pool is keyfob's own, not asyncpg's: asyncpg's sends a reset query on every release
(a second round trip per refresh) and, even without it, costs as much client time per
borrow as the rotation itself (bench/pg_driver_compare.py). It can be small because no
pooled connection keeps session state (the store runs no ``SET``, only ``SET LOCAL``;
``LISTEN`` and session advisory locks live on connections of their own), and because a
connection that comes back broken or inside a transaction is dropped rather than
repaired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from .errors import UNAVAILABLE

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection of our own or one lent by the pool: the same API.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

__all__ = ["Connection", "ConnectionPool", "close_quietly"]


class ConnectionPool:
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
        await asyncio.gather(*(close_quietly(conn, within) for conn in idle))
        if self._in_use:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._drained.wait()
        for conn in list(self._in_use):
            conn.terminate()


async def close_quietly(conn: Connection, within: float) -> None:
    """Close ``conn`` politely within ``within`` seconds, or else terminate it."""
    try:
        await conn.close(timeout=within)
    except (TimeoutError, *UNAVAILABLE):
        conn.terminate()
