"""Redis, optional: shared rate-limit counters and revocation fan-out, and life without it.

In process: the fan-out's publisher and subscriber, and the rate-limit storage that falls
back to in-process counters, against a throwaway ``redis-server``. Then real instances
with ``KEYFOB_REDIS_URL``: counters shared by two instances, revocations that reach the
other instance through Redis alone (the database's NOTIFY trigger switched off), and
everything still working, and correct, after Redis is stopped mid-run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from keyfob.exceptions import RateLimited
from keyfob.server.fanout import CHANNEL, RevocationFanout
from keyfob.server.ratelimit import RateLimiter, RateLimits, redis_storage_uri
from keyfob.server.ratelimit_storage import FallbackStorage
from tests.services import PostgresServer, RedisServer

from .conftest import (
    PASSWORD,
    Cluster,
    clients,
    fresh_database,
    login,
    me,
    new_database,
    refresh,
    register,
    running_cluster,
)

pytestmark = [pytest.mark.redis]

#: Revocations must reach the other instance within this.
PROPAGATION_DEADLINE = 1.0


def redis_url(server: RedisServer, db: int) -> str:
    """Each user of the run's Redis gets a database number of its own (counters apart;
    pub/sub channels are server-wide, which only costs an extra resync)."""
    return f"redis://{server.host}:{server.port}/{db}"


async def eventually(condition: Callable[[], bool], within: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


# in process


async def test_fanout_publishes_and_hears_revocations(redis_server: RedisServer) -> None:
    """A sid published by one fan-out moves the other's marker within milliseconds; a
    subscription (re)made moves it too, since messages sent meanwhile were lost."""
    url = redis_url(redis_server, 1)
    ours, theirs = RevocationFanout(url), RevocationFanout(url)
    await ours.start()
    await theirs.start()
    try:
        await eventually(lambda: ours.subscribed and theirs.subscribed, within=2.0)
        assert theirs.marker >= 1, "subscribing counts as 'you may have missed some'"
        before = theirs.marker
        client = aioredis.Redis.from_url(url)
        async with client.pubsub() as spy:
            await spy.subscribe(CHANNEL)
            await ours.publish(["sid-1", "sid-2"])
            await eventually(lambda: theirs.marker >= before + 2, within=PROPAGATION_DEADLINE)
            heard = []
            while len(heard) < 2:
                message = await spy.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    heard.append(message["data"])
        await client.aclose()
        assert heard == [b"sid-1", b"sid-2"], "the channel carries one sid per message"
    finally:
        await ours.close()
        await theirs.close()


async def test_fanout_survives_redis_going_away_and_coming_back() -> None:
    """With Redis stopped, publishing returns at once without raising; when Redis is
    back the subscriber resubscribes by itself and bumps its marker."""
    with RedisServer() as server:
        fanout = RevocationFanout(server.url)
        await fanout.start()
        try:
            await eventually(lambda: fanout.subscribed, within=2.0)
            server.stop()
            await eventually(lambda: not fanout.subscribed, within=2.0)
            started = time.monotonic()
            await fanout.publish(["gone"])
            await fanout.publish(["gone again"])  # paused: does not even try
            assert time.monotonic() - started < 0.5
            marker = fanout.marker
            server.start()
            waited = await eventually(lambda: fanout.subscribed, within=3.0)
            assert fanout.marker > marker
            print(f"\nfan-out resubscribed {1000 * waited:.0f} ms after Redis came back")
        finally:
            await fanout.close()


async def test_rate_limits_fall_back_to_process_counters_while_redis_is_away() -> None:
    """Shared counters while Redis answers; per-process counters (still limiting, not
    failing open) while it does not; shared again once it is back."""
    with RedisServer() as server:
        uri = redis_storage_uri(server.url)
        limits = RateLimits(register_per_address="3/minute", storage_uri=uri)
        one, two = RateLimiter(limits), RateLimiter(limits)
        try:
            for limiter in (one, two, one):
                await limiter.check_register("10.0.0.1")
            with pytest.raises(RateLimited):
                await two.check_register("10.0.0.1")

            server.stop()
            assert isinstance(one.storage, FallbackStorage)
            for _ in range(3):
                await one.check_register("10.0.0.2")
            with pytest.raises(RateLimited):
                await one.check_register("10.0.0.2")
            assert not one.storage.using_shared

            server.start()
            fallback = one.storage
            fallback._shared_down_until = 0.0  # as if RETRY_SHARED_AFTER (5 s) had passed
            await one.check_register("10.0.0.3")
            assert fallback.using_shared
        finally:
            await one.aclose()
            await two.aclose()


# real instances


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> str:
    return fresh_database(postgres_server)


@pytest.fixture(scope="module")
def redis_cluster(
    database: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    env = {
        "KEYFOB_REDIS_URL": redis_url(redis_server, 2),
        # No periodic resync to lean on: revocations travel by NOTIFY or Redis only.
        "KEYFOB_REVOCATION_RESYNC_INTERVAL": "1h",
    }
    with running_cluster(tmp_path_factory.mktemp("redis"), database, 2, env) as c:
        yield c


@asynccontextmanager
async def notify_trigger_disabled(dsn: str) -> AsyncIterator[None]:
    """No NOTIFY on revocations for a while: only Redis can tell the other instances."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE sessions DISABLE TRIGGER sessions_notify_revoked")
        try:
            yield
        finally:
            await conn.execute("ALTER TABLE sessions ENABLE TRIGGER sessions_notify_revoked")
    finally:
        await conn.close()


async def login_status(client: httpx.AsyncClient, username: str, password: str) -> int:
    r = await client.post(
        "/auth/login", json={"username": username, "password": password, "transport": "body"}
    )
    if r.status_code == 429:
        assert int(r.headers["retry-after"]) >= 1
    return r.status_code


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.shared_database
async def test_rate_limit_counters_are_shared_by_instances(redis_cluster: Cluster) -> None:
    """The login throttle (5 failures of one account from one address) counts failures
    through both instances together: after 5, alternating, even the right password
    waits, where each instance alone would have seen 2 or 3."""
    async with clients(redis_cluster.urls) as (a, b):
        await register(a, "counted")
        statuses = [
            await login_status((a, b)[i % 2], "counted", "wrong password!") for i in range(5)
        ]
        statuses.append(await login_status(b, "counted", PASSWORD))
    assert statuses == [400] * 5 + [429]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.shared_database
async def test_revocations_reach_the_other_instance_through_redis(
    redis_cluster: Cluster,
) -> None:
    """With the database's NOTIFY trigger off and no periodic resync, a logout through
    one instance is still refused by the other within a second: Redis carried it."""
    async with clients(redis_cluster.urls) as (a, b), notify_trigger_disabled(redis_cluster.dsn):
        await register(b, "fanned")
        access = (await login(a, "fanned"))["access_token"]
        assert (await me(b, access)).status_code == 200
        r = await a.post("/auth/logout", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 204
        started = time.monotonic()
        while (await me(b, access)).status_code != 401:
            assert time.monotonic() - started < PROPAGATION_DEADLINE
            await asyncio.sleep(0.002)
        latency = time.monotonic() - started
    print(f"\nrevocation through Redis alone: {1000 * latency:.1f} ms")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.shared_database
async def test_redis_stopping_mid_run_changes_nothing_that_matters(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Redis stops under two instances: refreshes, logins and revocations (by NOTIFY)
    go on and stay correct, nothing answers 5xx, and login limits still bite, counted
    per process."""
    dsn = await new_database(postgres_server)
    with RedisServer() as server:
        env = {"KEYFOB_REDIS_URL": server.url}
        with running_cluster(tmp_path, dsn, 2, env) as cluster:
            async with clients(cluster.urls) as (a, b):
                await register(a, "steady")
                token = (await login(b, "steady"))["refresh_token"]
                async with aioredis.Redis.from_url(server.url) as spy:
                    assert await spy.keys("LIMITS*"), "counters live in Redis"

                server.stop()
                statuses = []
                for i in range(20):
                    r = await refresh((a, b)[i % 2], token)
                    statuses.append(r.status_code)
                    token = r.json()["refresh_token"]
                assert statuses == [200] * 20

                access = (await login(a, "steady"))["access_token"]
                assert (await me(b, access)).status_code == 200
                await a.post("/auth/logout", headers={"Authorization": f"Bearer {access}"})
                started = time.monotonic()
                while (await me(b, access)).status_code != 401:
                    assert time.monotonic() - started < PROPAGATION_DEADLINE
                    await asyncio.sleep(0.005)

                # Per process now: a throttles after its own 5 failures, b has seen none.
                a_statuses = [await login_status(a, "steady", "wrong password!") for _ in range(5)]
                a_statuses.append(await login_status(a, "steady", PASSWORD))
                assert a_statuses == [400] * 5 + [429]
                assert await login_status(b, "steady", PASSWORD) == 200, "b counts on its own"

            output = cluster.output()
    assert "Traceback" not in output
    assert "counting in this process" in output
