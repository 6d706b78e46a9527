"""Cost of one refresh rate-limit check as the number of live keys grows.

Compares ``limits``' own ``async+memory://`` storage with keyfob's
``async+keyfob-memory://`` (``keyfob.server.ratelimit_storage``), both under the
sliding-window-counter strategy keyfob uses. ``limits``' memory storage schedules a sweep
over every key on each hit, so its cost grows with the number of sessions that refreshed
in the last window; keyfob's checks expiry lazily and sweeps at most every 10 s.

    .venv/bin/python bench/ratelimit_storage.py
"""

from __future__ import annotations

import asyncio
import time

from keyfob.server.ratelimit import RateLimiter, RateLimits

CHECKS = 2000


async def per_check(storage_uri: str, keys: int) -> float:
    limiter = RateLimiter(
        RateLimits(refresh_per_session="100000000/minute", storage_uri=storage_uri)
    )
    for i in range(keys):
        await limiter.check_refresh(f"session-{i}")
    await asyncio.sleep(0.2)  # let any pending sweep finish before timing
    started = time.perf_counter()
    for i in range(CHECKS):
        await limiter.check_refresh(f"session-{i % 10}")
        await asyncio.sleep(0)  # yield, as a server does between requests
    return (time.perf_counter() - started) / CHECKS * 1e6


async def main() -> None:
    print(f"{'live keys':>10}  {'async+memory':>14}  {'async+keyfob-memory':>20}  (us per check)")
    for keys in (10, 1_000, 10_000, 100_000):
        theirs = await per_check("async+memory://", keys)
        ours = await per_check("async+keyfob-memory://", keys)
        print(f"{keys:>10,}  {theirs:>14,.1f}  {ours:>20,.1f}")


if __name__ == "__main__":
    asyncio.run(main())
