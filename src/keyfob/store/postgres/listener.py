"""How a PostgreSQL store hears of revocations made by any instance: LISTEN/NOTIFY.

A trigger (migration 0001) sends ``NOTIFY keyfob_revocations, '<sid>'`` in the
transaction of every revocation, whoever makes it. Each store keeps one
:class:`RevocationListener`: a connection of its own, outside the pool, that listens on
that channel. A notification, and every (re)connection of the listener (it may have
missed some meanwhile), bumps :attr:`RevocationListener.marker`, which the store returns
as its revocation marker. When the connection is lost (closed by the server, or silent
to a ping) the listener reconnects with a capped backoff until PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from ...exceptions import StoreUnavailable
from .errors import UNAVAILABLE, translate
from .pool import close_quietly

if TYPE_CHECKING:
    from .pool import Connection

__all__ = ["REVOCATION_CHANNEL", "RevocationListener"]

logger = logging.getLogger("keyfob")

#: The channel every revocation is announced on; the payload is the sid.
REVOCATION_CHANNEL: Final = "keyfob_revocations"


class RevocationListener:
    """One connection that LISTENs for revocations, kept alive while the store is open.

    ``connect`` opens a connection that can hold a session (the store's ``session_dsn``);
    ``keepalive`` is how long the connection may stay quiet before it is pinged, and
    ``ping_timeout`` how long the ping may take before the connection counts as lost.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        *,
        keepalive: float,
        ping_timeout: float,
    ) -> None:
        self._connect = connect
        self._keepalive = keepalive
        self._ping_timeout = ping_timeout
        #: Moves with every notification and every (re)connection; reading it does no I/O.
        self.marker = 0
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        #: Set by :meth:`close`: the listening loop ends at its next step, cancelled or not.
        self._closing = False

    async def start(self) -> None:
        """Connect and keep listening in a task of its own; nothing if already started.

        A failure to connect is :class:`StoreUnavailable`; later failures are retried.
        """
        if self._task is not None:
            return
        self._closing = False
        conn = await self._connect_listener()
        self._task = asyncio.get_running_loop().create_task(
            self._keep_listening(conn), name="keyfob-postgres-listener"
        )

    async def close(self, within: float) -> None:
        """Stop listening and close the connection, within about ``2 * within`` seconds.

        The task is cancelled, but a cancellation that lands while the listener reconnects
        can get lost in the driver (then the task went back to waiting for the next
        keepalive, and ``close`` with it), so ``close`` does not trust it: ``_closing``
        stops the loop at its next step, the connection is terminated if the task has not
        ended within ``within``, and a task that still will not end is left cancelled
        rather than waited on forever. A cancellation of ``close`` itself is never
        swallowed.
        """
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=within)
            if not task.done():
                # Stuck in I/O that ignored the cancellation: cut the connection under it.
                if self._conn is not None:
                    self._conn.terminate()
                task.cancel()
                await asyncio.wait({task}, timeout=within)
            if not task.done():
                logger.warning("the PostgreSQL revocation listener did not stop in time")
            elif not task.cancelled() and task.exception() is not None:
                logger.warning("the PostgreSQL revocation listener ended with an error")
        conn, self._conn = self._conn, None
        if conn is not None:
            await close_quietly(conn, within)

    def _on_notification(self, _conn: object, _pid: int, _channel: str, _payload: object) -> None:
        self.marker += 1

    async def _connect_listener(self) -> Connection:
        with translate("listening for revocations"):
            conn = await self._connect()
            try:
                await conn.add_listener(REVOCATION_CHANNEL, self._on_notification)
            except BaseException:
                conn.terminate()
                raise
        if self._closing:  # closed while connecting (a lost cancellation): do not linger
            conn.terminate()
            raise asyncio.CancelledError
        self._conn = conn
        # Revocations made while nobody listened are unknown: make every reader resync.
        self.marker += 1
        return conn

    async def _keep_listening(self, conn: Connection) -> None:
        """Watch the listener connection; reconnect (with backoff) whenever it is lost.

        Runs until :meth:`close` cancels it or sets ``_closing``; ``close`` closes the
        current connection (a task cancelled before its first step never runs a
        ``finally`` of its own).
        """
        while not self._closing:
            try:
                await self._watch(conn)
            except Exception:  # the listener must not die quietly: log, then reconnect
                logger.exception("the PostgreSQL revocation listener failed; reconnecting")
            conn.terminate()
            self._conn = None
            if self._closing:
                return
            conn = await self._reconnect()

    async def _watch(self, conn: Connection) -> None:
        """Return when ``conn`` is lost: closed by the server, or silent to a ping."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not conn.is_closed() and not self._closing:
            try:
                await asyncio.wait_for(lost.wait(), timeout=self._keepalive)
                return
            except TimeoutError:
                pass
            # Quiet for a while: make sure the server is still there (a dropped network
            # does not close the socket).
            try:
                await conn.execute("SELECT 1", timeout=self._ping_timeout)
            except UNAVAILABLE:
                return

    async def _reconnect(self) -> Connection:
        delay = 0.05
        while not self._closing:
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
        raise asyncio.CancelledError  # closed meanwhile
