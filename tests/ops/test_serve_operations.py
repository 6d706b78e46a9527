"""Metrics and health through a real ``keyfob serve --workers 2``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.serve_process import ServeProcess
from tests.server.uvicorn_process import free_port

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


def _refreshes_ok(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "keyfob_refreshes_total" and sample.labels["result"] == "ok":
                return sample.value
    return 0.0


def _refresh_many(url: str, count: int) -> None:
    """Each refresh on a new connection, so both workers answer some."""
    with httpx.Client(base_url=url, timeout=10) as http:
        r = http.post("/auth/register", json={"username": "erin", "password": PASSWORD})
        assert r.status_code == 201
        body = {"username": "erin", "password": PASSWORD, "transport": "body"}
        token = http.post("/auth/login", json=body).json()["refresh_token"]
    for _ in range(count):
        with httpx.Client(base_url=url, timeout=10) as fresh:
            r = fresh.post("/auth/refresh", json={"refresh_token": token})
            assert r.status_code == 200, r.text
            token = r.json()["refresh_token"]


def _scrape_until(url: str, expected: float, timeout: float = 30.0) -> str:
    """Scrape until the workers' flushed numbers add up (they flush every 5 s)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(url, timeout=5).text
        if _refreshes_ok(text) == expected:
            return text
        time.sleep(0.5)
    raise AssertionError(f"refreshes never added up to {expected}:\n{text}")


def test_metrics_of_every_worker_on_the_servers_port(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = ServeProcess(tmp_path, workers=2, env={"KEYFOB_METRICS": "on", "TMPDIR": str(tmp)})
    with server:
        assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
        _refresh_many(server.url, 12)
        text = _scrape_until(f"{server.url}/metrics", 12)
        assert "keyfob_live_sessions " in text
        (directory,) = tmp.iterdir()  # serve's metrics directory, one file per worker
        assert directory.name.startswith("keyfob-metrics-")
    assert list(tmp.iterdir()) == []  # removed when serve stopped


def test_metrics_on_a_separate_listener(tmp_path: Path) -> None:
    port = free_port()
    server = ServeProcess(tmp_path, workers=2, env={"KEYFOB_METRICS": f"127.0.0.1:{port}"})
    with server:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        _refresh_many(server.url, 4)
        _scrape_until(f"http://127.0.0.1:{port}/metrics", 4)
        assert any(f"metrics: http://127.0.0.1:{port}/metrics" in line for line in server.lines())
