"""``/metrics``: off by default; counters, histograms and the sampled gauge when on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from keyfob import Settings
from keyfob.exceptions import ConfigurationError, StoreUnavailable
from keyfob.server import RateLimits, create_app
from keyfob.server.metrics import LATENCY_BUCKETS, Recorder, merge_snapshots
from keyfob.server.metrics_export import MetricsExport
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import PASSWORD, bearer, login, register, running


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class _FlakyStore(MemoryStore):
    down = False

    async def rotate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreUnavailable("database unreachable")
        return await super().rotate(*args, **kwargs)


async def test_metrics_are_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404


def test_the_setting_takes_off_on_or_an_address() -> None:
    assert Settings.from_env(environ={"KEYFOB_METRICS": "ON"}).metrics == "on"
    assert Settings.from_env(environ={"KEYFOB_METRICS": "[::1]:9100"}).metrics == "[::1]:9100"
    assert Settings.from_env(environ={"KEYFOB_METRICS": "no"}).metrics == "off"
    for bad in ("maybe", "9100", "host:", "host:99999"):
        with pytest.raises(ConfigurationError, match="KEYFOB_METRICS"):
            Settings.from_env(environ={"KEYFOB_METRICS": bad})


async def test_counters_follow_what_happened(settings: Settings, clock: FrozenClock) -> None:
    limits = RateLimits(throttle_after=1)
    app = create_app(settings.replace(metrics="on"), MemoryStore(), clock, rate_limits=limits)
    async with running(app) as client:
        await register(client)
        first = (await login(client, transport="body")).json()["refresh_token"]
        wrong = {"username": "alice", "password": PASSWORD + "!"}
        assert (await client.post("/auth/login", json=wrong)).status_code == 400
        second = await client.post("/auth/refresh", json={"refresh_token": first})
        assert second.status_code == 200
        forged = await client.post("/auth/refresh", json={"refresh_token": "kfrt_" + "x" * 50})
        assert forged.status_code == 400
        clock.advance(settings.grace + 1)
        reused = await client.post("/auth/refresh", json={"refresh_token": first})
        assert reused.status_code == 400  # reuse: the session is revoked
        # Throttled: after one failure this client waits before trying the account again.
        assert (await client.post("/auth/login", json=wrong)).status_code == 429
        me = await client.get("/auth/me", headers=bearer(second.json()["access_token"]))
        assert me.status_code == 401  # revoked by the reuse detection
        text = (await client.get("/metrics")).text
    samples = _samples(text)
    assert _value(samples, "keyfob_logins_total", result="ok") == 1
    assert _value(samples, "keyfob_logins_total", result="failed") == 1
    assert _value(samples, "keyfob_refreshes_total", result="ok", reason="") == 1
    assert _value(samples, "keyfob_refreshes_total", result="invalid", reason="malformed") == 1
    assert _value(samples, "keyfob_refreshes_total", result="invalid", reason="reused") == 1
    assert (
        _value(samples, "keyfob_reuse_detections_total", rule="previous_token_outside_grace") == 1
    )
    assert _value(samples, "keyfob_revocations_total", reason="reuse_detected") == 1
    assert _value(samples, "keyfob_rate_limited_total", route="/auth/login") == 1
    assert _value(samples, "keyfob_http_requests_total", route="/auth/login", status="429") == 1
    assert _value(samples, "keyfob_http_requests_total", route="/auth/me", status="401") == 1
    assert _value(samples, "keyfob_request_seconds_count", route="/auth/refresh") == 3
    assert _value(samples, "keyfob_request_seconds_bucket", route="/auth/login", le="+Inf") == 3
    # Sampled when the app started, before any login: not recounted per scrape.
    assert _value(samples, "keyfob_live_sessions") == 0


async def test_store_outage_is_counted(settings: Settings, clock: FrozenClock) -> None:
    store = _FlakyStore()
    app = create_app(settings.replace(metrics="on"), store, clock)
    async with running(app) as client:
        await register(client)
        token = (await login(client, transport="body")).json()["refresh_token"]
        store.down = True
        r = await client.post("/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 503
        text = (await client.get("/metrics")).text
    samples = _samples(text)
    assert _value(samples, "keyfob_store_errors_total", kind="unavailable") == 1
    assert _value(samples, "keyfob_refreshes_total", result="invalid", reason="unavailable") == 1


async def test_revocations_are_counted_by_reason(app: Starlette) -> None:
    app = create_app(app.state.manager.settings.replace(metrics="on"), MemoryStore(), FrozenClock())
    async with running(app) as client:
        await register(client)
        tokens = [(await login(client, transport="body")).json() for _ in range(3)]
        r = await client.post("/auth/logout", json={"refresh_token": tokens[0]["refresh_token"]})
        assert r.status_code == 204
        r = await client.post("/auth/logout-all", headers=bearer(tokens[1]["access_token"]))
        assert r.json() == {"revoked": 2}
        samples = _samples((await client.get("/metrics")).text)
    assert _value(samples, "keyfob_revocations_total", reason="logout") == 1
    assert _value(samples, "keyfob_revocations_total", reason="logout_all") == 2


def test_files_of_other_workers_are_summed(tmp_path: Path) -> None:
    """A scrape adds the numbers every worker flushed to the live ones of its own."""
    other = Recorder()
    other.count("keyfob_logins_total", ("ok",), 5)
    other.observe_latency("/auth/refresh", 0.0004)
    other.set_live_sessions(7, at=100.0)
    (tmp_path / "1.json").write_text(json.dumps(other.snapshot()))
    older = Recorder()
    older.set_live_sessions(3, at=50.0)
    older.count("keyfob_logins_total", ("failed",))
    (tmp_path / "2.json").write_text(json.dumps(older.snapshot()))
    (tmp_path / "3.json").write_text("{not json")  # a damaged file is skipped

    mine = Recorder()
    mine.count("keyfob_logins_total", ("ok",), 2)
    mine.observe_latency("/auth/refresh", 0.002)
    export = MetricsExport(mine, tmp_path)
    export.flush()  # its own file is skipped in favour of the live numbers
    assert (tmp_path / f"{os.getpid()}.json").exists()
    body, content_type = export.exposition()
    assert content_type.startswith("text/plain")
    samples = _samples(body.decode())
    assert _value(samples, "keyfob_logins_total", result="ok") == 7
    assert _value(samples, "keyfob_logins_total", result="failed") == 1
    assert _value(samples, "keyfob_request_seconds_count", route="/auth/refresh") == 2
    assert _value(samples, "keyfob_request_seconds_bucket", route="/auth/refresh", le="0.0005") == 1
    assert _value(samples, "keyfob_live_sessions") == 7  # the newest sample


def test_histogram_buckets_are_cumulative() -> None:
    recorder = Recorder()
    for seconds in (0.0001, 0.0003, 0.003, 100.0):
        recorder.observe_latency("/auth/login", seconds)
    merged = merge_snapshots([recorder.snapshot()])
    counts = merged["histograms"]["/auth/login"]["counts"]
    assert len(counts) == len(LATENCY_BUCKETS) + 1
    assert sum(counts) == 4 and counts[-1] == 1  # 100 s lands in +Inf


async def test_a_separate_listener_serves_the_metrics_while_the_app_runs(
    settings: Settings, clock: FrozenClock
) -> None:
    """KEYFOB_METRICS=HOST:PORT without a metrics directory: this process listens."""
    from tests.server.uvicorn_process import free_port

    port = free_port()
    app = create_app(settings.replace(metrics=f"127.0.0.1:{port}"), MemoryStore(), clock)
    async with running(app) as client:
        await register(client)
        await login(client, transport="body")
        assert (await client.get("/metrics")).status_code == 404
        async with httpx.AsyncClient() as scraper:
            text = (await scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    assert _value(_samples(text), "keyfob_logins_total", result="ok") == 1
    async with httpx.AsyncClient() as scraper:
        with pytest.raises(httpx.ConnectError):  # stopped with the app
            await scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
