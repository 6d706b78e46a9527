"""Rate limits (spec §7): 429 with Retry-After for login and registration floods, while
racing refreshes of one client are never refused. Login throttling (never a lockout) is
tested in test_ratelimit_throttle.py."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from keyfob import Settings
from keyfob.server import create_app
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import PASSWORD, another_client, login, register, running, unlimited


def assert_429(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too_many_requests"
    retry_after = int(r.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


def app_with(settings: Settings, clock: FrozenClock, **limits: Any) -> Starlette:
    """An app whose limits are all off but the ones given."""
    return create_app(
        settings, MemoryStore(), clock, rate_limits=dataclasses.replace(unlimited(), **limits)
    )


async def wrong_password(client: httpx.AsyncClient, username: str = "alice") -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": "W" * 12})


async def test_login_is_limited_per_client_address(settings: Settings, clock: FrozenClock) -> None:
    """A client address that tries too many logins gets 429 with Retry-After."""
    app = app_with(settings, clock, login_per_address="3/minute")
    async with running(app) as client:
        for name in ("a", "b", "c"):
            assert (await wrong_password(client, name)).status_code == 400
        retry_after = assert_429(await wrong_password(client, "d"))
        assert retry_after <= 60


async def test_register_is_limited_per_client_address(
    settings: Settings, clock: FrozenClock
) -> None:
    """Account creation (an argon2 hash each) is limited per client address."""
    app = app_with(settings, clock, register_per_address="2/minute")
    async with running(app) as client:
        await register(client, "a")
        await register(client, "b")
        r = await client.post("/auth/register", json={"username": "c", "password": PASSWORD})
        assert_429(r)


async def test_refresh_is_limited_per_session(settings: Settings, clock: FrozenClock) -> None:
    """A session refreshed beyond its limit gets 429; another session is unaffected, and
    the refused token still works once the window allows (nothing was rotated)."""
    app = app_with(settings, clock, refresh_per_session="3/minute")
    async with running(app) as client:
        await register(client)
        token = (await login(client, transport="body")).json()["refresh_token"]
        for _ in range(3):
            r = await client.post("/auth/refresh", json={"refresh_token": token})
            token = r.json()["refresh_token"]
        assert_429(await client.post("/auth/refresh", json={"refresh_token": token}))
        r = await client.post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token}
        )
        assert_429(r)
        other = (await login(client, transport="body")).json()["refresh_token"]
        assert (
            await client.post("/auth/refresh", json={"refresh_token": other})
        ).status_code == 200


@pytest.mark.parametrize("transport", ["cookie", "body"])
async def test_forty_parallel_refreshes_are_never_refused(
    settings: Settings, clock: FrozenClock, transport: str
) -> None:
    """With the default limits, 40 parallel refreshes of one token all succeed, identically."""
    app = create_app(settings, MemoryStore(), clock)
    async with running(app) as client, another_client(app) as jarless:
        await register(client)
        r = await login(client, transport=transport)
        if transport == "body":
            token = r.json()["refresh_token"]
            requests = [
                jarless.post("/auth/refresh", json={"refresh_token": token}) for _ in range(40)
            ]
        else:
            # The same cookie on every request, as racing tabs of one browser send it.
            cookie = {"Cookie": r.headers["set-cookie"].partition(";")[0], "X-Keyfob-CSRF": "1"}
            requests = [jarless.post("/auth/refresh", headers=cookie) for _ in range(40)]
        answers = await asyncio.gather(*requests)
    assert [r.status_code for r in answers] == [200] * 40
    successors = {
        r.json()["refresh_token"] if transport == "body" else r.headers["set-cookie"]
        for r in answers
    }
    assert len(successors) == 1
