"""``/healthz`` and ``/readyz``: JSON, 200/503, cheap, never limited, logged or recorded."""

from __future__ import annotations

import logging

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from keyfob import Settings
from keyfob.exceptions import StoreUnavailable
from keyfob.server import RateLimits, create_app
from keyfob.store.migrations import load_migrations
from keyfob.store.postgres import PostgresStore
from keyfob.store.postgres.schema import apply_migrations
from keyfob.testing import FrozenClock, MemoryStore
from tests.services import PostgresServer

from ..store.test_postgres_store import empty_database
from .conftest import running


class _DownStore(MemoryStore):
    """A store whose lookups fail as an unreachable database's do."""

    down = False

    async def get_session(self, sid: str):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreUnavailable("database unreachable")
        return await super().get_session(sid)


async def test_healthz_answers_ok_without_touching_the_store(app: Starlette) -> None:
    # Not even started: liveness needs no store.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="https://testserver"
    ) as client:
        r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {}}
    assert r.headers["cache-control"] == "no-store"


async def test_readyz_is_503_until_the_lifespan_started(app: Starlette) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="https://testserver"
    ) as client:
        r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert r.headers["retry-after"] == "5"


async def test_readyz_checks_store_keys_and_migrations(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "checks": {"migrations": "ok", "store": "ok", "signing_keys": "ok"},
    }


@pytest.mark.postgres
async def test_readyz_after_the_start_upgraded_a_postgres_database(
    postgres_server: PostgresServer, settings: Settings, clock: FrozenClock
) -> None:
    """A PostgreSQL database last migrated by a keyfob without 0004: the server's start
    applies what is missing, and /readyz then reports the migrations current."""
    dsn = await empty_database(postgres_server, "keyfob_readyz")
    migrations = load_migrations("postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn, migrations[:3], statement_timeout=0)
        async with running(create_app(settings, PostgresStore(dsn), clock)) as client:
            r = await client.get("/readyz")
            ledger = await conn.fetch("SELECT name FROM keyfob_migrations ORDER BY version")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["migrations"] == "ok"
        assert [row["name"] for row in ledger] == [m.name for m in migrations]
        assert "0004_hot_refresh" in [m.name for m in migrations]
    finally:
        await conn.close()


async def test_readyz_is_503_while_the_store_is_down(
    settings: Settings, clock: FrozenClock
) -> None:
    store = _DownStore()
    app = create_app(settings, store, clock)
    async with running(app) as client:
        store.down = True
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["store"] == "unavailable"
        assert r.json()["checks"]["signing_keys"] == "ok"
        store.down = False
        assert (await client.get("/readyz")).status_code == 200


async def test_readyz_reports_an_unreachable_redis_as_degraded(
    settings: Settings, clock: FrozenClock
) -> None:
    """Without Redis keyfob still serves (local counters): ready, but says so."""
    pytest.importorskip("redis")
    app = create_app(settings.replace(redis_url="redis://127.0.0.1:1/0"), MemoryStore(), clock)
    async with running(app) as client:
        r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["redis"] == "degraded"


async def test_health_is_never_rate_limited_logged_or_recorded(
    settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    tight = RateLimits(
        login_per_address="1/minute",
        register_per_address="1/minute",
        refresh_per_session="1/minute",
    )
    app = create_app(settings.replace(metrics="on"), store, clock, rate_limits=tight)
    caplog.set_level(logging.DEBUG, logger="keyfob")
    async with running(app) as client:
        before = await store.list_events(limit=100)  # the first signing key's
        caplog.clear()
        for _ in range(20):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert not [r for r in caplog.records if r.name == "keyfob.request"]
    assert await store.list_events(limit=100) == before
    assert "/healthz" not in metrics and "/readyz" not in metrics
