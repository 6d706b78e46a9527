"""The background jobs every server process runs, and the app's Redis wiring, in process.

Two managers on one :class:`MemoryStore` stand for two instances on one database: the
store's revocation marker never moves (it has no other writers to announce), so only the
jobs can carry one manager's changes to the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as aioredis

from keyfob import SessionManager, Settings
from keyfob.exceptions import ConfigurationError
from keyfob.server import create_app
from keyfob.server.fanout import CHANNEL, RevocationFanout
from keyfob.server.maintenance import (
    purge_in_batches,
    reload_keys_if_changed,
    start_maintenance,
    stop_maintenance,
)
from keyfob.server.ratelimit_storage import FallbackStorage
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore
from tests.services import RedisServer

from .conftest import sid_of

PASSWORD = "correct horse battery staple"


async def eventually(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.005)


def kids(manager: SessionManager) -> set[str]:
    records = manager.keys()  # the manager's method, not a mapping's
    return {record.kid for record in records}


class Lock:
    """A purge lock that is always someone else's, or always ours."""

    def __init__(self, ours: bool) -> None:
        self.ours = ours
        self.asked = 0

    async def try_lock_purge(self) -> bool:
        self.asked += 1
        return self.ours

    async def release_purge_lock(self) -> None:
        pass


async def test_keys_are_installed_only_when_the_stored_set_changed() -> None:
    """The key reload leaves an unchanged key set (and the verified-token cache) alone,
    and installs a key another instance rotated in."""
    store = MemoryStore()
    async with (
        SessionManager(FAST_SETTINGS, store) as ours,
        SessionManager(FAST_SETTINGS, store) as theirs,
    ):
        assert await reload_keys_if_changed(ours) is False
        record = await theirs.rotate_signing_key()
        assert record.kid not in kids(ours)
        assert await reload_keys_if_changed(ours) is True
        assert record.kid in kids(ours)
        assert await reload_keys_if_changed(ours) is False


async def test_the_purge_runs_in_batches_and_only_for_the_lock_holder() -> None:
    """Without the lock nothing is purged; with it, every expired session goes, in
    batches."""
    clock = FrozenClock()
    settings = FAST_SETTINGS.replace(absolute_ttl=10.0)
    async with SessionManager(settings, MemoryStore(), clock=clock) as manager:
        user = await manager.register("expiring", PASSWORD)
        for _ in range(5):
            await manager.issue(user.id)
        clock.advance(11)
        theirs = Lock(ours=False)
        assert await purge_in_batches(manager, theirs, batch=2) is None
        assert theirs.asked == 1 and await manager.store.count_sessions() == 5
        assert await purge_in_batches(manager, Lock(ours=True), batch=2) == 5
        assert await manager.store.count_sessions() == 0


async def test_the_periodic_resync_picks_up_revocations_nobody_announced() -> None:
    """Another instance's revocation, which no marker announces, reaches this manager's
    revoked set through the resync job."""
    store = MemoryStore()
    fast = FAST_SETTINGS.replace(
        revocation_resync_interval=0.02, key_reload_interval=0.02, purge_interval=0.02
    )
    async with SessionManager(fast, store) as ours, SessionManager(fast, store) as theirs:
        user = await theirs.register("revoked", PASSWORD)
        pair = await theirs.issue(user.id)
        assert ours.verify_access_token(pair.access_token).sid == pair.session.sid
        jobs = start_maintenance(ours)
        try:
            await theirs.revoke_session(pair.session.sid)
            await eventually(
                lambda: ours.revoked.is_revoked(pair.session.sid, ours.clock.now()), within=2.0
            )
        finally:
            await stop_maintenance(jobs)
        assert all(job.done() for job in jobs)


def test_intervals_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="must be positive"):
        Settings(revocation_resync_interval=0)


@pytest.mark.redis
async def test_with_a_redis_url_the_app_shares_counters_and_fans_out_revocations(
    redis_server: RedisServer,
) -> None:
    """create_app with KEYFOB_REDIS_URL: the manager announces revocations on the channel,
    the rate limits count in Redis (falling back in process), and the lifespan closes
    every connection (warnings are errors here)."""
    url = f"redis://{redis_server.host}:{redis_server.port}/3"
    store = MemoryStore()
    app = create_app(FAST_SETTINGS.replace(redis_url=url), store)
    manager = app.state.manager
    assert manager.store is store
    assert isinstance(manager.revocation_feed, RevocationFanout)
    assert isinstance(app.state.keyfob.limiter.storage, FallbackStorage)
    spy = aioredis.Redis.from_url(url)
    try:
        async with app.router.lifespan_context(app), spy.pubsub() as heard:
            await heard.subscribe(CHANNEL)
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
                r = await c.post("/auth/register", json={"username": "al", "password": PASSWORD})
                assert r.status_code == 201
                r = await c.post(
                    "/auth/login",
                    json={"username": "al", "password": PASSWORD, "transport": "body"},
                )
                access = r.json()["access_token"]
                r = await c.post("/auth/logout", headers={"Authorization": f"Bearer {access}"})
                assert r.status_code == 204
            message = None
            while message is None:
                message = await heard.get_message(ignore_subscribe_messages=True, timeout=2.0)
            assert message["data"].decode() == sid_of(access)
            assert await spy.keys("LIMITS*")
    finally:
        await spy.aclose()
