"""The request log: one record per request with chosen fields, the request id echoed."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from keyfob.server.log_format import JsonFormatter, TextFormatter, logging_config

from .conftest import bearer, login, register


def _requests(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.keyfob for r in caplog.records if r.name == "keyfob.request"]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _request_log_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="keyfob")


async def test_one_record_per_request_with_its_fields(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = await register(client)
    tokens = (await login(client, transport="body")).json()
    r = await client.delete("/auth/sessions/nosuch", headers=bearer(tokens["access_token"]))
    assert r.status_code == 404
    await client.get("/no/such/path/with/attacker-chosen-text")
    records = _requests(caplog)
    assert [(x["method"], x["route"], x["status"]) for x in records] == [
        ("POST", "/auth/register", 201),
        ("POST", "/auth/login", 200),
        ("DELETE", "/auth/sessions/{sid}", 404),
        ("GET", "unmatched", 404),
    ]
    login_record, delete_record = records[1], records[2]
    assert login_record["user_id"] == user_id and login_record["sid"]
    assert delete_record["user_id"] == user_id and delete_record["error"] == "not_found"
    assert all(x["client"] == "127.0.0.1" and x["latency_ms"] >= 0 for x in records)
    assert len({x["request_id"] for x in records}) == 4


async def test_a_sane_request_id_is_kept_and_echoed_else_replaced(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    r = await client.get("/.well-known/jwks.json", headers={"X-Request-ID": "lb-1234.abc"})
    assert r.headers["x-request-id"] == "lb-1234.abc"
    for bad in ("a" * 65, "line\\nbreak", "<script>", ""):
        r = await client.get("/.well-known/jwks.json", headers={"X-Request-ID": bad})
        echoed = r.headers["x-request-id"]
        assert echoed != bad and len(echoed) == 16
    ids = [x["request_id"] for x in _requests(caplog)]
    assert ids[0] == "lb-1234.abc" and len(ids) == 5


async def test_no_log_line_and_no_request_id_when_the_logger_is_off(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="keyfob.request")
    r = await client.get("/.well-known/jwks.json")
    assert "x-request-id" not in r.headers
    assert _requests(caplog) == []


def test_formatters_write_one_line_of_the_chosen_fields() -> None:
    record = logging.LogRecord("keyfob.request", logging.INFO, "f", 1, "POST %s", ("/x",), None)
    record.keyfob = {"event": "request", "route": "/x", "status": 200, "sid": None}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["logger"] == "keyfob.request" and data["route"] == "/x" and data["level"] == "info"
    assert data["time"].endswith("Z")
    text = TextFormatter().format(record)
    assert "POST /x" in text and "status=200" in text and "sid=" not in text
    plain = logging.LogRecord("uvicorn.error", logging.INFO, "f", 1, "Started %d", (1,), None)
    assert json.loads(JsonFormatter().format(plain))["message"] == "Started 1"


def test_serve_logging_config_replaces_uvicorns_access_log() -> None:
    config = logging_config("json", "info")
    assert config["loggers"]["uvicorn.access"]["handlers"] == []
    assert "keyfob.request" not in config["loggers"]
    off = logging_config("text", "debug", request_log=False)
    assert off["loggers"]["keyfob.request"]["level"] == "WARNING"
    assert off["formatters"]["keyfob"]["()"].endswith("TextFormatter")
