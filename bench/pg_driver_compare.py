"""Compare asyncpg and psycopg 3 (async) on the statement keyfob runs most: a rotation.

The workload is spec §3's refresh: one conditional ``UPDATE sessions SET counter =
counter + 1 … WHERE sid = $1 AND counter = $2 AND secret_hash = $3 AND … RETURNING``
the whole row, on keyfob's own schema (migration 0001), each call rotating another of
1,000 live sessions with its current counter, so every call really updates a row.

Contenders, each on its own connection(s), autocommit, the statement prepared once:

- ``asyncpg``: ``Connection.fetchrow`` (asyncpg prepares and caches statements itself).
- ``psycopg``: ``AsyncConnection.execute(..., prepare=True)`` then ``fetchone()``, binary
  results; autocommit so no ``BEGIN``/``COMMIT`` is sent.
- ``asyncpg pool, default reset``: the same call on a connection borrowed from asyncpg's
  pool as it comes, which sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
  RESET ALL`` on every release: a second round trip per refresh.
- ``asyncpg pool, no reset``: asyncpg's pool with that reset turned off.
- ``psycopg_pool``: the same call on a connection borrowed from psycopg's pool.
- ``keyfob PostgresStore.rotate``: the store as shipped (its own small pool over asyncpg
  connections, one round trip, the row decoded into a ``Session``): what keyfob pays.

Two shapes: ``sequential`` (one connection, one call at a time: latency per call) and
``concurrent`` (8 connections, one task each: the client's CPU per call when the server
is kept busy; on a 2-core machine client and server share the CPUs).

Run::

    .venv/bin/pip install 'psycopg[binary]' psycopg-pool   # only for this measurement
    .venv/bin/python bench/pg_driver_compare.py [--quick] [--json] [--dsn postgresql://…]

Without ``--dsn`` a throwaway PostgreSQL server is started (tests/services.py) and
removed afterwards. Timing: contenders run in interleaved rounds and each keeps its
fastest round, so a noisy neighbour slows every contender alike.
docs/dependencies.md quotes these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

try:
    import keyfob  # noqa: F401  (only to know whether it is installed)
except ImportError:  # a plain checkout: measure the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
# tests/services.py starts the throwaway server.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyfob.store.postgres import PostgresStore

SESSIONS = 1000
SECRET_HASH = bytes(range(32))
NOW = 1_800_000_000.0
IDLE_TTL = 7 * 86400.0
COLUMNS = (
    "sid, user_id, client_id, scope, secret_hash, counter, created_at, last_used_at, "
    "rotated_at, idle_expires_at, absolute_expires_at, user_agent, ip, revoked_at, "
    "revoked_reason"
)
ROTATE_ASYNCPG = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = $4, last_used_at = $4, "
    "idle_expires_at = LEAST($4 + $5, absolute_expires_at) "
    "WHERE sid = $1 AND counter = $2 AND secret_hash = $3 AND revoked_at IS NULL "
    "AND idle_expires_at > $4 AND absolute_expires_at > $4 "
    f"RETURNING {COLUMNS}"
)
ROTATE_PSYCOPG = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = %(now)s, last_used_at = %(now)s, "
    "idle_expires_at = LEAST(%(now)s + %(idle)s, absolute_expires_at) "
    "WHERE sid = %(sid)s AND counter = %(counter)s AND secret_hash = %(hash)s "
    "AND revoked_at IS NULL AND idle_expires_at > %(now)s AND absolute_expires_at > %(now)s "
    f"RETURNING {COLUMNS}"
)
CONCURRENCY = 8


class Counters:
    """The current counter of every session, shared by all contenders (they take turns)."""

    def __init__(self) -> None:
        self.counter = [0] * SESSIONS
        self.next = 0

    def take(self) -> tuple[str, int, int]:
        i = self.next
        self.next = (i + 1) % SESSIONS
        return f"bench-{i:05d}", self.counter[i], i

    def advance(self, i: int) -> None:
        self.counter[i] += 1


Caller = Callable[[], Awaitable[None]]
Closer = Callable[[], Awaitable[None]]


async def make_asyncpg(dsn: str, counters: Counters, width: int) -> tuple[list[Caller], Closer]:
    conns = [await asyncpg.connect(dsn) for _ in range(width)]

    def caller(conn: asyncpg.Connection) -> Caller:
        async def call() -> None:
            sid, counter, i = counters.take()
            row = await conn.fetchrow(ROTATE_ASYNCPG, sid, counter, SECRET_HASH, NOW, IDLE_TTL)
            if row is None:
                raise AssertionError("asyncpg: the rotation matched nothing")
            counters.advance(i)

        return call

    async def close() -> None:
        for conn in conns:
            await conn.close()

    return [caller(c) for c in conns], close


async def make_psycopg(dsn: str, counters: Counters, width: int) -> tuple[list[Caller], Closer]:
    conns = [
        await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=0)
        for _ in range(width)
    ]

    def caller(conn: psycopg.AsyncConnection[Any]) -> Caller:
        async def call() -> None:
            sid, counter, i = counters.take()
            params = {"sid": sid, "counter": counter, "hash": SECRET_HASH, "now": NOW}
            params["idle"] = IDLE_TTL
            cur = await conn.execute(ROTATE_PSYCOPG, params, prepare=True, binary=True)
            if await cur.fetchone() is None:
                raise AssertionError("psycopg: the rotation matched nothing")
            counters.advance(i)

        return call

    async def close() -> None:
        for conn in conns:
            await conn.close()

    return [caller(c) for c in conns], close


async def no_reset(conn: asyncpg.Connection) -> None:
    """A pool reset that sends nothing (asyncpg still rolls back an open transaction)."""
    del conn


async def make_asyncpg_pool(
    dsn: str, counters: Counters, width: int, *, reset: Any = no_reset
) -> tuple[list[Caller], Closer]:
    pool = await asyncpg.create_pool(dsn, min_size=width, max_size=width, reset=reset)

    async def call() -> None:
        sid, counter, i = counters.take()
        async with pool.acquire(timeout=5) as conn:
            row = await conn.fetchrow(ROTATE_ASYNCPG, sid, counter, SECRET_HASH, NOW, IDLE_TTL)
        if row is None:
            raise AssertionError("asyncpg pool: the rotation matched nothing")
        counters.advance(i)

    return [call] * width, pool.close


async def make_psycopg_pool(
    dsn: str, counters: Counters, width: int
) -> tuple[list[Caller], Closer]:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        dsn,
        min_size=width,
        max_size=width,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0},
    )
    await pool.open(wait=True)

    async def call() -> None:
        sid, counter, i = counters.take()
        params = {"sid": sid, "counter": counter, "hash": SECRET_HASH, "now": NOW}
        params["idle"] = IDLE_TTL
        async with pool.connection(timeout=5) as conn:
            cur = await conn.execute(ROTATE_PSYCOPG, params, prepare=True, binary=True)
            row = await cur.fetchone()
        if row is None:
            raise AssertionError("psycopg pool: the rotation matched nothing")
        counters.advance(i)

    return [call] * width, pool.close


async def make_store(dsn: str, counters: Counters, width: int) -> tuple[list[Caller], Closer]:
    # One store, as an instance of keyfob has: its pool holds `width` connections.
    store = PostgresStore(dsn, pool_min=width, pool_max=width)
    await store.open()

    async def call() -> None:
        sid, counter, i = counters.take()
        session = await store.rotate(
            sid, counter=counter, secret_hash=SECRET_HASH, now=NOW, idle_ttl=IDLE_TTL
        )
        if session is None:
            raise AssertionError("store: the rotation matched nothing")
        counters.advance(i)

    return [call] * width, store.close


CONTENDERS = {
    "asyncpg": make_asyncpg,
    "psycopg": make_psycopg,
    "asyncpg pool, default reset": functools.partial(make_asyncpg_pool, reset=None),
    "asyncpg pool, no reset": make_asyncpg_pool,
    "psycopg_pool": make_psycopg_pool,
    "keyfob PostgresStore.rotate": make_store,
}


async def prepare_database(dsn: str) -> None:
    """keyfob's schema (through the store itself) and SESSIONS live sessions."""
    store = PostgresStore(dsn)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE sessions")
        await conn.executemany(
            "INSERT INTO sessions (sid, user_id, client_id, scope, secret_hash, counter, "
            "created_at, last_used_at, idle_expires_at, absolute_expires_at) "
            "VALUES ($1, 'u', 'keyfob', '', $2, 0, $3, $3, $4, $5)",
            [
                (f"bench-{i:05d}", SECRET_HASH, NOW, NOW + IDLE_TTL * 1000, NOW + IDLE_TTL * 2000)
                for i in range(SESSIONS)
            ],
        )
        await conn.execute("VACUUM ANALYZE sessions")
    finally:
        await conn.close()


async def run_round(callers: list[Caller], calls_each: int) -> float:
    """Seconds per call over all callers running at once, ``calls_each`` calls each."""

    async def loop(call: Caller) -> None:
        for _ in range(calls_each):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in callers))
    return (time.perf_counter() - start) / (calls_each * len(callers))


async def measure(dsn: str, *, rounds: int, calls: int) -> dict[str, dict[str, float]]:
    counters = Counters()
    results: dict[str, dict[str, float]] = {}
    for shape, width in (("sequential", 1), ("concurrent", CONCURRENCY)):
        made: dict[str, tuple[list[Caller], Closer]] = {}
        try:
            for name, make in CONTENDERS.items():
                made[name] = await make(dsn, counters, width)
                await run_round(made[name][0], 200)  # warm up: prepare, fill caches
            best = {name: float("inf") for name in CONTENDERS}
            for _ in range(rounds):
                for name, (callers, _) in made.items():
                    seconds = await run_round(callers, calls // width)
                    best[name] = min(best[name], seconds)
            results[shape] = {name: s * 1e6 for name, s in best.items()}
        finally:
            for _, close in made.values():
                await close()
    return results


@contextlib.contextmanager
def server(dsn: str | None) -> Iterator[str]:
    if dsn is not None:
        yield dsn
        return
    from tests.services import PostgresServer

    with PostgresServer() as pg:
        yield pg.dsn()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--dsn", help="an existing database to use (its sessions table is reset)")
    args = parser.parse_args()
    rounds, calls = (3, 800) if args.quick else (7, 4000)
    with server(args.dsn) as dsn:
        asyncio.run(prepare_database(dsn))
        results = asyncio.run(measure(dsn, rounds=rounds, calls=calls))
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "asyncpg": asyncpg.__version__,
        "psycopg": psycopg.__version__,
        "psycopg_impl": psycopg.pq.__impl__,
        "rounds": rounds,
        "calls_per_round": calls,
        "concurrency": CONCURRENCY,
        "us_per_call": results,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(
        f"Python {info['python']}, asyncpg {info['asyncpg']}, psycopg {info['psycopg']} "
        f"({info['psycopg_impl']}); best of {rounds} rounds of {calls} rotations"
    )
    for shape, row in results.items():
        base = row["asyncpg"]
        print(f"\n{shape} ({1 if shape == 'sequential' else CONCURRENCY} connection(s))")
        for name, us in row.items():
            print(f"  {name:<32} {us:8.1f} µs/call   {us / base:5.2f}x asyncpg")


if __name__ == "__main__":
    main()
