"""keyfob's in-process limits storage: sliding-window counters with lazy expiry."""

from __future__ import annotations

import asyncio
import time

from limits import parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from keyfob.server.ratelimit_storage import CounterMemoryStorage


async def test_the_uri_names_this_storage() -> None:
    """async+keyfob-memory:// builds a CounterMemoryStorage through limits' own factory."""
    assert isinstance(storage_from_string("async+keyfob-memory://"), CounterMemoryStorage)


async def test_sliding_window_refuses_beyond_the_limit_and_clears() -> None:
    """Three hits of 3/minute pass, the fourth is refused, and clearing starts over."""
    storage = CounterMemoryStorage()
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = parse("3/minute")
    assert [await limiter.hit(item, "k") for _ in range(4)] == [True, True, True, False]
    assert (await limiter.get_window_stats(item, "k")).remaining == 0
    assert await limiter.hit(item, "other")
    await limiter.clear(item, "k")
    assert await limiter.hit(item, "k")


async def test_counters_expire_lazily_and_are_swept() -> None:
    """An expired counter reads as zero at once; the periodic sweep frees its memory."""
    storage = CounterMemoryStorage()
    assert await storage.incr("a", 1) == 1
    assert await storage.incr("a", 1) == 2
    assert await storage.incr("b", 60) == 1
    assert await storage.get_expiry("a") <= time.time() + 1
    await asyncio.sleep(1.05)
    assert await storage.get("a") == 0
    await storage.incr("c", 1)
    await asyncio.sleep(1.05)
    storage._sweep(time.time() + 11)  # as the next hit after the sweep interval would
    assert len(storage) == 1  # only "b" is still live


async def test_reset_empties_everything() -> None:
    """reset() drops every counter and says how many there were."""
    storage = CounterMemoryStorage()
    for key in "abc":
        await storage.incr(key, 60)
    assert await storage.reset() == 3
    assert await storage.get("a") == 0
    assert await storage.check()
