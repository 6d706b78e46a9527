"""An in-process ``limits`` storage whose cost does not grow with the number of keys.

``limits``' own ``async+memory://`` storage starts an expiry sweep over *every* key on
nearly every hit: with 10,000 live sessions each refresh paid ~5 ms for it, and with
100,000 ~60 ms (measured in-process). This storage checks expiry lazily on each read,
which is all correctness needs, and reclaims memory with one sweep every
:data:`SWEEP_EVERY` seconds at most, so a hit costs O(1).

It serves the sliding-window-counter strategy (two counters per key), which is what
:mod:`keyfob.server.ratelimit` uses. URI: ``async+keyfob-memory://``. Like any in-process
storage, each worker process counts on its own.

:class:`FallbackStorage` puts a shared storage (Redis, with ``KEYFOB_REDIS_URL``) in
front of one of these: while the shared one fails, each process counts on its own.

The event loop runs one coroutine at a time and no method awaits between reading and
writing a counter, so no locks are needed.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Final

from limits.aio.storage import SlidingWindowCounterSupport, Storage
from limits.storage.base import TimestampedSlidingWindow

__all__ = ["RETRY_SHARED_AFTER", "SWEEP_EVERY", "CounterMemoryStorage", "FallbackStorage"]

logger = logging.getLogger("keyfob.server")

#: The most often expired keys are swept out, in seconds.
SWEEP_EVERY: Final = 10.0


class CounterMemoryStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """Counters with expiry times in two dictionaries; expired entries read as zero."""

    # limits registers storages by this class attribute (its base declares it a list).
    STORAGE_SCHEME = ["async+keyfob-memory"]  # noqa: RUF012

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._counts: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._counts)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        self._sweep(now)
        count = self._live(key, now) + amount
        if count == amount:
            self._expires[key] = now + expiry
        self._counts[key] = count
        return count

    async def get(self, key: str) -> int:
        return self._live(key, time.time())

    async def get_expiry(self, key: str) -> float:
        return self._expires.get(key, time.time())

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        count = len(self._counts)
        self._counts.clear()
        self._expires.clear()
        return count

    async def clear(self, key: str) -> None:
        self._counts.pop(key, None)
        self._expires.pop(key, None)

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        now = time.time()
        previous, previous_ttl, current, _ = self._window(key, expiry, now)
        if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
            return False
        # A window's counter lives two windows: it is the "previous" one in the next.
        await self.incr(self.sliding_window_keys(key, expiry, now)[1], 2 * expiry, amount)
        return True

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._window(key, expiry, time.time())

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        for window_key in self.sliding_window_keys(key, expiry, time.time()):
            await self.clear(window_key)

    def _window(self, key: str, expiry: int, now: float) -> tuple[int, float, int, float]:
        # The same arithmetic as limits' own storages: (previous count, its remaining
        # weight in seconds, current count, current window's remaining life).
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._live(previous_key, now)
        current = self._live(current_key, now)
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    def _live(self, key: str, now: float) -> int:
        expires = self._expires.get(key)
        if expires is None:
            return 0
        if expires <= now:
            del self._expires[key]
            self._counts.pop(key, None)
            return 0
        return self._counts[key]

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY
        for key in [k for k, expires in self._expires.items() if expires <= now]:
            del self._expires[key]
            self._counts.pop(key, None)


#: Seconds a failed shared storage is left alone before it is tried again.
RETRY_SHARED_AFTER: Final = 5.0


class FallbackStorage(Storage, SlidingWindowCounterSupport):
    """A shared storage (Redis) that falls back to in-process counters while it fails.

    keyfob must keep serving, and stay correct, when Redis goes away (spec §6: Redis is
    optional). Of the two ways to degrade, failing open (no limits at all while Redis
    is down) would hand an attacker an off switch for the login limits; so each process
    counts on its own instead, as it does without Redis: an account's login budget is
    then at most the limit times the number of processes, for as long as the outage
    lasts. The shared storage is retried :data:`RETRY_SHARED_AFTER` seconds after each
    failure, so a dead Redis costs one failed call per process per interval, not one
    per request. Counters made in process meanwhile are not carried over to Redis.
    """

    def __init__(
        self,
        shared: Storage,
        local: CounterMemoryStorage | None = None,
        *,
        errors: tuple[type[Exception], ...] = (),
        retry_after: float = RETRY_SHARED_AFTER,
    ) -> None:
        super().__init__()
        if not isinstance(shared, SlidingWindowCounterSupport):
            raise TypeError("the shared storage must support sliding-window counters")
        self.shared = shared
        self._shared_window: SlidingWindowCounterSupport = shared
        self.local = local or CounterMemoryStorage()
        self._errors: tuple[type[Exception], ...] = (OSError, *errors)
        self._retry_after = retry_after
        self._shared_down_until = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()

    @property
    def using_shared(self) -> bool:
        """Whether the next call goes to the shared storage."""
        return time.monotonic() >= self._shared_down_until

    def _failed(self, exc: BaseException) -> None:
        self._shared_down_until = time.monotonic() + self._retry_after
        logger.warning(
            "the shared rate-limit storage failed (%s: %s); counting in this process for "
            "the next %.0f s",
            type(exc).__name__,
            exc,
            self._retry_after,
        )

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        if self.using_shared:
            try:
                return await self.shared.incr(key, expiry, amount)
            except self._errors as exc:
                self._failed(exc)
        return await self.local.incr(key, expiry, amount)

    async def get(self, key: str) -> int:
        if self.using_shared:
            try:
                return await self.shared.get(key)
            except self._errors as exc:
                self._failed(exc)
        return await self.local.get(key)

    async def get_expiry(self, key: str) -> float:
        if self.using_shared:
            try:
                return await self.shared.get_expiry(key)
            except self._errors as exc:
                self._failed(exc)
        return await self.local.get_expiry(key)

    async def check(self) -> bool:
        try:
            return await self.shared.check()
        except self._errors:
            return False

    async def reset(self) -> int | None:
        return await self.local.reset()

    async def clear(self, key: str) -> None:
        if self.using_shared:
            try:
                await self.shared.clear(key)
            except self._errors as exc:
                self._failed(exc)
        await self.local.clear(key)

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if self.using_shared:
            try:
                return await self._shared_window.acquire_sliding_window_entry(
                    key, limit, expiry, amount
                )
            except self._errors as exc:
                self._failed(exc)
        return await self.local.acquire_sliding_window_entry(key, limit, expiry, amount)

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        if self.using_shared:
            try:
                return await self._shared_window.get_sliding_window(key, expiry)
            except self._errors as exc:
                self._failed(exc)
        return await self.local.get_sliding_window(key, expiry)

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        if self.using_shared:
            try:
                await self._shared_window.clear_sliding_window(key, expiry)
            except self._errors as exc:
                self._failed(exc)
        await self.local.clear_sliding_window(key, expiry)
