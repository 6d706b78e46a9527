"""Revocation fan-out over Redis pub/sub: optional, used only when ``KEYFOB_REDIS_URL`` is set.

Every server process already learns of other processes' revocations from its store: the
PostgreSQL store's ``LISTEN``/``NOTIFY`` marker (or SQLite's ``data_version``), plus the
server's periodic resync. Redis adds a second, independent path:

- it keeps working where ``LISTEN`` cannot (PgBouncer in transaction mode without a
  ``session_dsn``), and
- the channel is a documented interface: a resource server that keeps its own
  revoked-sid set can subscribe to :data:`CHANNEL` (one message per revoked session, the
  payload is its ``sid``) instead of polling keyfob.

:class:`RevocationFanout` is the manager's :class:`~keyfob.revocation_feed.RevocationFeed`:
the :class:`~keyfob.SessionManager` publishes the sids of every revocation it commits,
and compares the fan-out's :attr:`~RevocationFanout.marker`, a counter the subscriber
bumps on every message (and on every (re)subscription, since messages sent while nobody
listened are lost), beside the store's own marker. When it moves, the manager resyncs
from the store, exactly as it does on a ``NOTIFY``: the message only says *look*, the
store stays the truth.

Redis is never required for correctness. A publish that fails is logged and publishing
pauses for :data:`RETRY_AFTER` seconds (the store's own marker and the resync carry the
revocation meanwhile); the subscriber reconnects with a capped backoff. Nothing here
raises into a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["CHANNEL", "RETRY_AFTER", "RevocationFanout"]

logger = logging.getLogger("keyfob.server")

#: The pub/sub channel; each message is the ``sid`` of one revoked session.
CHANNEL: Final = "keyfob:revocations"
#: Seconds publishing pauses after a failure (Redis down): no request waits on it twice.
RETRY_AFTER: Final = 5.0
#: Socket timeouts towards Redis, in seconds: a Redis that stops answering costs a
#: revocation at most this much, once per :data:`RETRY_AFTER`.
TIMEOUT: Final = 0.5
#: How long the subscriber waits for a message before it pings Redis.
KEEPALIVE: Final = 5.0

_ERRORS = (RedisError, OSError)  # asyncio's TimeoutError is an OSError


def redis_client(url: str, *, timeout: float = TIMEOUT) -> aioredis.Redis:
    """A client for ``url`` that fails fast: short socket timeouts and no retries (the
    callers have their own fallback, so a retry would only make a request wait longer)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=KEEPALIVE,
    )


class RevocationFanout:
    """Publishes revoked sids to :data:`CHANNEL` and counts the messages heard on it
    (a :class:`~keyfob.revocation_feed.RevocationFeed`).

    ``await start()`` starts the subscriber (it never fails for want of Redis: it keeps
    trying in the background); ``await close()`` stops it.
    """

    def __init__(self, url: str, *, channel: str = CHANNEL, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.channel = channel
        self._timeout = timeout
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._marker = 0
        self._publish_paused_until = 0.0
        self._closing = False
        #: True while the subscriber is subscribed (for health checks and tests).
        self.subscribed = False

    def __repr__(self) -> str:
        return f"RevocationFanout(channel={self.channel!r})"

    @property
    def marker(self) -> int:
        """Bumped by every message heard and every (re)subscription. No I/O."""
        return self._marker

    async def start(self) -> None:
        if self._task is not None:
            return
        self._client = redis_client(self.url, timeout=self._timeout)
        self._task = asyncio.get_running_loop().create_task(
            self._subscribe_forever(self._client), name="keyfob-redis-fanout"
        )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            # On Python 3.11 a cancellation that arrives just as a read's timeout expires
            # can be swallowed inside redis-py (asyncio.timeout, fixed in 3.12): ask again
            # until the task has really ended.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_ERRORS):
                await client.aclose()

    async def publish(self, sids: Sequence[str]) -> None:
        """Announce revoked sessions; best effort, never raises."""
        client = self._client
        if not sids or client is None or time.monotonic() < self._publish_paused_until:
            return
        try:
            async with asyncio.timeout(self._timeout):
                async with client.pipeline(transaction=False) as pipe:
                    for sid in sids:
                        pipe.publish(self.channel, sid)
                    await pipe.execute()
        except _ERRORS as exc:
            self._publish_paused_until = time.monotonic() + RETRY_AFTER
            logger.warning(
                "could not publish %d revocation(s) to Redis (%s: %s); other instances "
                "learn of them from the store; retrying Redis in %.0f s",
                len(sids),
                type(exc).__name__,
                exc,
                RETRY_AFTER,
            )

    async def _subscribe_forever(self, client: aioredis.Redis) -> None:
        delay = 0.05
        failures = 0
        while not self._closing:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                # Messages sent while nobody listened are lost: make every reader resync.
                self._marker += 1
                self.subscribed = True
                if failures:
                    logger.info("revocation fan-out: resubscribed to Redis")
                failures = 0
                delay = 0.05
                while not self._closing:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=KEEPALIVE
                    )
                    if message is None:
                        # Quiet for a while: a dead connection only shows when used.
                        await pubsub.ping()
                    elif message.get("type") == "message":
                        self._marker += 1
            except _ERRORS as exc:
                failures += 1
                # Say it once per outage, not once per reconnect attempt.
                log = logger.warning if failures == 1 else logger.debug
                log("revocation fan-out: Redis subscription lost (%s: %s)", type(exc).__name__, exc)
            except Exception:  # the subscriber must not die quietly: log, then resubscribe
                failures += 1
                logger.exception("revocation fan-out: the Redis subscriber failed")
            finally:
                self.subscribed = False
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
