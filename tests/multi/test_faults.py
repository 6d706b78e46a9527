"""Faults, with nothing lost: PostgreSQL stopping, an instance killed, a held lock.

Three keyfob processes on a PostgreSQL server of this module's own (it is stopped and
started again here, which must not disturb other suites). Clients hold refresh tokens
and keep refreshing them through the instances in turn, at a bounded rate, the way a
well-behaved client does: a 200 replaces its token, a 503 keeps it and waits, a dropped
connection keeps it and tries the next instance. Afterwards every token a client holds
must still work, and nothing may have been revoked or flagged as reused.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from tests.services import PostgresServer

from .conftest import (
    Cluster,
    clients,
    fresh_database,
    login,
    me_statuses,
    query,
    refresh,
    register,
    running_cluster,
    sid_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.shared_database]

#: Clients holding a session each, and the pause between one client's refreshes. The
#: pause keeps each session well under the per-session refresh limit (120/minute).
CLIENTS = 12
PAUSE = 0.3
#: lock_timeout of the instances' store URL, in seconds (the default is 2).
LOCK_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own: the tests stop it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    dsn = fresh_database(pg)
    env = {"KEYFOB_STORE_URL": f"{dsn}?lock_timeout={LOCK_TIMEOUT}"}
    with running_cluster(tmp_path_factory.mktemp("faults"), dsn, 3, env) as c:
        yield c


@dataclass
class Holder:
    """One client and the refresh token it holds."""

    token: str
    sid: str
    statuses: Counter[int | str] = field(default_factory=Counter)
    #: (monotonic time sent, seconds taken, status) of every attempt.
    attempts: list[tuple[float, float, int | str]] = field(default_factory=list)


@dataclass
class Load:
    holders: list[Holder]

    def statuses(self) -> Counter[int | str]:
        total: Counter[int | str] = Counter()
        for h in self.holders:
            total.update(h.statuses)
        return total

    def attempts(self) -> list[tuple[float, float, int | str]]:
        return sorted(a for h in self.holders for a in h.attempts)


async def start_sessions(cluster: Cluster, user: str, count: int) -> Load:
    async with clients(cluster.urls) as instances:
        await register(instances[0], user)
        holders = []
        for i in range(count):
            answer = await login(instances[i % len(instances)], user)
            holders.append(Holder(answer["refresh_token"], sid_of(answer["access_token"])))
    return Load(holders)


async def drive(
    load: Load, instances: list[httpx.AsyncClient], done: Callable[[], bool], limit: float
) -> None:
    """Every holder refreshes through the instances in turn until ``done()`` (at most
    ``limit`` seconds)."""
    deadline = time.monotonic() + limit

    async def one(n: int, holder: Holder) -> None:
        turn = n
        while not done() and time.monotonic() < deadline:
            client = instances[turn % len(instances)]
            turn += 1
            sent = time.monotonic()
            try:
                r = await refresh(client, holder.token)
            except httpx.TransportError:
                # The instance is gone, perhaps after rotating: the same token, elsewhere.
                holder.statuses["dropped"] += 1
                holder.attempts.append((sent, time.monotonic() - sent, "dropped"))
                continue
            holder.statuses[r.status_code] += 1
            holder.attempts.append((sent, time.monotonic() - sent, r.status_code))
            if r.status_code == 200:
                holder.token = r.json()["refresh_token"]
            elif r.status_code == 503:
                assert int(r.headers["retry-after"]) >= 1
                assert r.json()["error"] == "temporarily_unavailable"
            await asyncio.sleep(PAUSE)

    await asyncio.gather(*(one(n, h) for n, h in enumerate(load.holders)))


async def assert_nothing_lost(cluster: Cluster, load: Load, via: list[str]) -> None:
    """Every token held still rotates; nothing was revoked or flagged as reused."""
    async with clients(via) as instances:
        answers = await asyncio.gather(
            *(refresh(instances[n % len(instances)], h.token) for n, h in enumerate(load.holders))
        )
    assert [r.status_code for r in answers] == [200] * len(answers), [r.text for r in answers]
    revoked = await query(cluster.dsn, "SELECT sid FROM sessions WHERE revoked_at IS NOT NULL")
    assert revoked == []
    reused = await query(cluster.dsn, "SELECT detail FROM events WHERE kind = 'reuse_detected'")
    assert reused == []


async def test_postgres_stopping_mid_load_answers_503_and_loses_nothing(
    cluster: Cluster, pg: PostgresServer
) -> None:
    """PostgreSQL stops for ~2.5 s under a refresh load spread over three instances:
    refreshes answer 503 with Retry-After (never 500, never a false reuse alarm), and
    once PostgreSQL is back every token the clients hold rotates again."""
    load = await start_sessions(cluster, "outage", CLIENTS)
    restarted_at: list[float] = []

    def recovered() -> bool:
        # Done when every holder has rotated twice since PostgreSQL came back.
        if not restarted_at:
            return False
        return all(
            sum(1 for sent, _, status in h.attempts if sent > restarted_at[0] and status == 200)
            >= 2
            for h in load.holders
        )

    async def outage() -> tuple[float, float]:
        await asyncio.sleep(1.0)
        stopping = time.monotonic()
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(2.5)
        await asyncio.to_thread(pg.start)
        restarted_at.append(time.monotonic())
        return stopping, restarted_at[0]

    async with clients(cluster.urls) as instances:
        _, (stopped_at, back_at) = await asyncio.gather(
            drive(load, instances, recovered, limit=25.0), outage()
        )

    statuses = load.statuses()
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, "PostgreSQL was down: some refreshes must have been refused"
    assert recovered()
    await assert_nothing_lost(cluster, load, cluster.urls)

    attempts = load.attempts()
    unavailable = [took for _, took, status in attempts if status == 503]
    first_503 = min(sent + took for sent, took, status in attempts if status == 503)
    last_200 = max(sent + took for sent, took, status in attempts if status == 200)
    first_200_after = min(
        sent + took for sent, took, status in attempts if status == 200 and sent > back_at
    )
    assert max(unavailable) < 2.0, "a refused refresh answers at once, it does not hang"
    print(
        f"\nPostgreSQL outage: {statuses}; first 503 {1000 * (first_503 - stopped_at):.0f} ms "
        f"after stop began; 503 latency median {1000 * statistics.median(unavailable):.1f} ms, "
        f"max {1000 * max(unavailable):.1f} ms; first 200 {1000 * (first_200_after - back_at):.0f}"
        f" ms after PostgreSQL was ready; last 200 at {last_200 - stopped_at:.1f} s"
    )


async def test_killing_an_instance_mid_load_loses_no_token(cluster: Cluster) -> None:
    """kill -9 one of three instances while clients refresh through all of them: every
    token a client holds is still good afterwards: rotated with its successor delivered,
    or not rotated, or rotated by the dead instance and recovered through the grace rule
    on another."""
    load = await start_sessions(cluster, "crash", CLIENTS)
    victim = cluster.servers[2]
    killed: list[float] = []

    def done() -> bool:
        return bool(killed) and time.monotonic() - killed[0] > 2.0

    async def crash() -> None:
        await asyncio.sleep(1.0)
        victim.kill()
        killed.append(time.monotonic())

    try:
        async with clients(cluster.urls) as instances:
            await asyncio.gather(drive(load, instances, done, limit=15.0), crash())
        statuses = load.statuses()
        assert set(statuses) <= {200, "dropped"}, statuses
        await assert_nothing_lost(cluster, load, cluster.urls[:2])
        print(f"\nkill -9 of one instance: {statuses}")
    finally:
        victim.start()
        victim.wait_ready()


async def test_a_held_lock_answers_503_instead_of_hanging(cluster: Cluster) -> None:
    """A transaction holding a session's row lock, then the whole sessions table: the
    refreshes that need them answer 503 with Retry-After after lock_timeout, the others
    are served, and once the lock goes the same tokens rotate."""
    load = await start_sessions(cluster, "locked", 2)
    blocked, free = load.holders
    conn = await asyncpg.connect(cluster.dsn)
    try:
        async with clients(cluster.urls) as (a, b, c):
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT 1 FROM sessions WHERE sid = $1 FOR UPDATE", blocked.sid)

            async def timed(client: httpx.AsyncClient, token: str) -> tuple[httpx.Response, float]:
                sent = time.monotonic()
                r = await refresh(client, token)
                return r, time.monotonic() - sent

            (r_blocked, t_blocked), (r_free, t_free) = await asyncio.gather(
                timed(a, blocked.token), timed(b, free.token)
            )
            assert r_blocked.status_code == 503 and r_blocked.headers["retry-after"] == "1"
            assert LOCK_TIMEOUT * 0.9 <= t_blocked < LOCK_TIMEOUT + 1.0
            assert r_free.status_code == 200 and t_free < LOCK_TIMEOUT
            free.token = r_free.json()["refresh_token"]
            access = r_free.json()["access_token"]

            # Each instance catches up with revocation notices it has pending (the earlier
            # tests made some); after that a protected route needs no database.
            assert await me_statuses((a, b, c), access) == [200] * 3
            await conn.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            r_table, t_table = await timed(c, free.token)
            assert r_table.status_code == 503 and t_table < LOCK_TIMEOUT + 1.0
            assert await me_statuses((a, b, c), access) == [200] * 3
            await tx.rollback()

            answers = await asyncio.gather(refresh(a, blocked.token), refresh(b, free.token))
            assert [r.status_code for r in answers] == [200, 200]
    finally:
        await conn.close()
    print(
        f"\nheld row lock: 503 after {1000 * t_blocked:.0f} ms (lock_timeout "
        f"{LOCK_TIMEOUT:.0f} s), other session served in {1000 * t_free:.0f} ms; "
        f"table lock: 503 after {1000 * t_table:.0f} ms"
    )
