"""Health and metrics in a FastAPI app that installs keyfob (``KeyfobAuth.install``)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from keyfob.integrations.fastapi import KeyfobAuth
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from ..integrations.test_fastapi import build, serve
from .conftest import PASSWORD


async def test_installed_app_answers_health_and_metrics(clock: FrozenClock) -> None:
    auth = KeyfobAuth.from_settings(FAST_SETTINGS.replace(metrics="on"), MemoryStore(), clock=clock)
    async for client in serve(build(auth)):
        assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"
        r = await client.post("/auth/register", json={"username": "zoe", "password": PASSWORD})
        assert r.status_code == 201
        r = await client.post("/auth/login", json={"username": "zoe", "password": PASSWORD})
        assert r.status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        # Security events are counted in any host app.
        assert 'keyfob_logins_total{result="ok"} 1.0' in metrics.text


async def test_no_metrics_route_when_off(clock: FrozenClock) -> None:
    auth = KeyfobAuth.from_settings(FAST_SETTINGS, MemoryStore(), clock=clock)
    async for client in serve(build(auth)):
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
