"""No token, secret, password or cookie value in any log line of a real ``keyfob serve``.

A realistic mix of requests (register, login in both transports, refreshes, a forged
token, a reused token, logout, a weak password, bearer calls) goes through a real
server with logs at DEBUG; every line it wrote is then scanned for the values it saw.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.ops.serve_process import ServeProcess
from tests.server.uvicorn_process import SECRET

pytestmark = pytest.mark.slow

PASSWORD = "Tr0ub4dor&3-horse-battery"
BAD_PASSWORD = "short7"
FORGED = "kfrt_" + "A" * 60
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}")


def _exercise(url: str) -> list[str]:
    """Run the mix; return every token and cookie value the server handed out."""
    seen: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as http:
        assert (
            http.post(
                "/auth/register", json={"username": "carol", "password": PASSWORD}
            ).status_code
            == 201
        )
        weak = http.post("/auth/register", json={"username": "dave", "password": BAD_PASSWORD})
        assert weak.status_code == 400
        body = http.post(
            "/auth/login",
            json={"username": "carol", "password": PASSWORD, "transport": "body"},
        ).json()
        seen += [body["access_token"], body["refresh_token"]]
        wrong = http.post("/auth/login", json={"username": "carol", "password": PASSWORD + "x"})
        assert wrong.status_code == 400
        rotated = http.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert rotated.status_code == 200
        seen += [rotated.json()["access_token"], rotated.json()["refresh_token"]]
        forged = http.post(
            "/auth/refresh",
            json={"refresh_token": FORGED},
            headers={"X-Request-ID": "forged-1"},
        )
        assert forged.status_code == 400
        assert forged.headers["x-request-id"] == "forged-1"
        me = http.get(
            "/auth/me", headers={"Authorization": f"Bearer {rotated.json()['access_token']}"}
        )
        assert me.status_code == 200
        bad_bearer = http.get("/auth/me", headers={"Authorization": "Bearer eyJhbGciOi.eyJzdWIi.x"})
        assert bad_bearer.status_code == 401

        # Cookie transport: the browser's way, with its Origin and CSRF header.
        origin = {"Origin": url, "X-Keyfob-CSRF": "1"}
        login = http.post(
            "/auth/login", json={"username": "carol", "password": PASSWORD}, headers=origin
        )
        assert login.status_code == 200, login.text
        seen.append(login.json()["access_token"])
        # httpx keeps Secure cookies for https only: send it by hand, as a browser would
        # to localhost.
        name, _, value = login.headers["set-cookie"].partition(";")[0].partition("=")
        seen.append(value)
        http.cookies.clear()
        cookie = {**origin, "Cookie": f"{name}={value}"}
        cookie_refresh = http.post("/auth/refresh", headers=cookie)
        assert cookie_refresh.status_code == 200, cookie_refresh.text
        seen.append(cookie_refresh.json()["access_token"])
        value = cookie_refresh.headers["set-cookie"].partition(";")[0].partition("=")[2]
        seen.append(value)
        cookie = {**origin, "Cookie": f"{name}={value}"}
        # The first body token again, after its grace: reuse detection.
        me_again = http.get("/auth/me", headers={"Authorization": f"Bearer {seen[-2]}"})
        assert me_again.status_code == 200
        reused = http.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert reused.status_code in {200, 400}
        assert http.post("/auth/logout", headers=cookie).status_code == 204
        nope = http.get("/auth/sessions", headers={"Authorization": "Bearer nope"})
        assert nope.status_code == 401
    return seen


def test_no_secret_reaches_the_logs(tmp_path: Path) -> None:
    server = ServeProcess(
        tmp_path, log_level="debug", env={"KEYFOB_GRACE": "0", "KEYFOB_METRICS": "on"}
    )
    with server:
        seen = _exercise(server.url)
    lines = server.lines()
    request_lines = [json.loads(line) for line in lines if '"event":"request"' in line]
    # The log is on and complete: every request of the mix has its line.
    routes = {(r["method"], r["route"], r["status"]) for r in request_lines}
    assert ("POST", "/auth/refresh", 400) in routes
    assert ("POST", "/auth/login", 200) in routes
    assert ("POST", "/auth/register", 400) in routes
    assert any(r["request_id"] == "forged-1" for r in request_lines)
    assert any('"event":"security"' in line for line in lines)

    forbidden = [*seen, PASSWORD, BAD_PASSWORD, FORGED, SECRET]
    assert all(len(value) >= 6 for value in forbidden)
    for line in lines:
        assert "kfrt_" not in line, line
        assert not _JWT.search(line), line
        for value in forbidden:
            assert value not in line, line
