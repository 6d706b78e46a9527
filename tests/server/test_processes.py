"""The real server in uvicorn processes on 127.0.0.1, driven by a real HTTP client.

httpx's cookie jar (the standard library's ``http.cookiejar``) never sends a ``Secure``
cookie over ``http://``, while browsers do on loopback, which they treat as a secure
context. These tests therefore carry the refresh cookie by hand, exactly as a browser
on ``http://127.0.0.1`` does: the ``Set-Cookie`` of one answer becomes the ``Cookie`` of
the next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from keyfob import Secret, SessionManager, Settings, open_store

from .conftest import PASSWORD
from .uvicorn_process import SECRET, UvicornProcess, client_port

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UvicornProcess]:
    with UvicornProcess(tmp_path) as s:
        yield s


def cookie_of(r: httpx.Response) -> tuple[str, str]:
    """(the Cookie header to send back, the full Set-Cookie) of an answer's refresh
    cookie (a login also sets the device cookie)."""
    set_cookie = next(v for v in r.headers.get_list("set-cookie") if "keyfob_device=" not in v)
    return set_cookie.partition(";")[0], set_cookie


async def test_cookie_flow_over_real_http(server: UvicornProcess) -> None:
    """Register, log in, refresh by cookie with the CSRF header and Origin, read /auth/me,
    log out: over a real socket, with the exact cookie attributes a browser gets."""
    origin = {"Origin": server.url, "X-Keyfob-CSRF": "1"}
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await client.post("/auth/register", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookie, set_cookie = cookie_of(r)
        assert cookie.startswith("__Secure-keyfob_refresh=kfrt_")
        assert set_cookie.endswith("; Path=/auth; HttpOnly; Secure; SameSite=Strict")
        assert "refresh_token" not in r.json()

        r = await client.post("/auth/refresh", headers={**origin, "Cookie": cookie})
        assert r.status_code == 200, r.text
        rotated, _ = cookie_of(r)
        assert rotated != cookie
        access = r.json()["access_token"]
        r = await client.get("/auth/me", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 200

        r = await client.post("/auth/refresh", headers={"Cookie": rotated})
        assert r.status_code == 403, "no CSRF header, no refresh"
        r = await client.post(
            "/auth/refresh",
            headers={"Cookie": rotated, "X-Keyfob-CSRF": "1", "Origin": "http://evil.example"},
        )
        assert r.status_code == 403

        r = await client.post("/auth/logout", headers={**origin, "Cookie": rotated})
        assert r.status_code == 204
        assert cookie_of(r)[1].startswith("__Secure-keyfob_refresh=; Max-Age=0;")
        r = await client.post("/auth/refresh", headers={**origin, "Cookie": rotated})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_many_clients_racing_one_token_get_one_successor(server: UvicornProcess) -> None:
    """32 clients on 32 connections refresh the same token at once: all get the identical
    successor, and nothing answers 5xx."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.post("/auth/register", json={"username": "alice", "password": PASSWORD})
        r = await client.post(
            "/auth/login", json={"username": "alice", "password": PASSWORD, "transport": "body"}
        )
        token = r.json()["refresh_token"]

    clients = [httpx.AsyncClient(base_url=server.url) for _ in range(32)]
    try:
        answers = await asyncio.gather(
            *(c.post("/auth/refresh", json={"refresh_token": token}) for c in clients)
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert [r.status_code for r in answers] == [200] * 32, [r.text for r in answers]
    assert len({r.json()["refresh_token"] for r in answers}) == 1


async def connections_to_each_worker(
    server: UvicornProcess, count: int
) -> dict[int, httpx.AsyncClient]:
    """One open client connection per worker process, found by asking /proc who holds it."""
    found: dict[int, httpx.AsyncClient] = {}
    for _ in range(20):
        batch = [httpx.AsyncClient(base_url=server.url) for _ in range(8)]
        answers = await asyncio.gather(*(c.get("/.well-known/jwks.json") for c in batch))
        for c, r in zip(batch, answers, strict=True):
            pid = server.worker_of(client_port(r))
            if pid is not None and pid not in found:
                found[pid] = c
            else:
                await c.aclose()
        if len(found) >= count:
            return found
    for c in found.values():
        await c.aclose()
    raise AssertionError(f"connections reached only {len(found)} of {count} workers")


@pytest.fixture
async def two_workers(tmp_path: Path) -> AsyncIterator[UvicornProcess]:
    # Create the schema and the first signing key once, as `keyfob migrate` would before
    # several workers start on a fresh database.
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'keyfob.db'}",
        secret=Secret(SECRET),
        issuer="http://127.0.0.1",
        password_profile="cheapest",
    )
    async with SessionManager(settings, open_store(settings.store_url, settings=settings)):
        pass
    with UvicornProcess(tmp_path, workers=2) as s:
        yield s


async def test_two_workers_share_sessions_and_revocations(two_workers: UvicornProcess) -> None:
    """Two uvicorn workers on one SQLite file: a refresh chain alternating between them stays
    correct, racing refreshes through both get one successor, and a session revoked through
    one worker is refused by the other on the very next request."""
    workers = await connections_to_each_worker(two_workers, 2)
    a, b = workers.values()
    try:
        await a.post("/auth/register", json={"username": "alice", "password": PASSWORD})

        async def login() -> dict[str, str]:
            r = await a.post(
                "/auth/login",
                json={"username": "alice", "password": PASSWORD, "transport": "body"},
            )
            assert r.status_code == 200, r.text
            return dict(r.json())

        session = await login()
        token = session["refresh_token"]
        for i in range(10):
            via = (a, b)[i % 2]
            r = await via.post("/auth/refresh", json={"refresh_token": token})
            assert r.status_code == 200, r.text
            token = r.json()["refresh_token"]

        racing = await asyncio.gather(
            *(c.post("/auth/refresh", json={"refresh_token": token}) for c in (a, b, a, b))
        )
        assert {r.status_code for r in racing} == {200}
        assert len({r.json()["refresh_token"] for r in racing}) == 1

        for revoker, checker in ((a, b), (b, a)):
            access = (await login())["access_token"]
            auth = {"Authorization": f"Bearer {access}"}
            assert (await checker.get("/auth/me", headers=auth)).status_code == 200
            assert (await revoker.post("/auth/logout", headers=auth)).status_code == 204
            r = await checker.get("/auth/me", headers=auth)
            assert r.status_code == 401, "revoked through one worker, refused by the other"
            assert "revoked" in r.json()["error_description"]
    finally:
        await asyncio.gather(*(c.aclose() for c in workers.values()))
