"""Rate limits (spec §7): 429 with Retry-After for login floods and lockouts, while racing
refreshes of one client are never refused."""

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


async def test_login_is_limited_per_account(settings: Settings, clock: FrozenClock) -> None:
    """Too many attempts on one account are refused even with the right password."""
    app = app_with(settings, clock, login_per_account="2/minute")
    async with running(app) as client:
        await register(client)
        await wrong_password(client)
        await wrong_password(client)
        r = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
        assert_429(r)
        # Another account is not affected.
        assert (await wrong_password(client, "bob")).status_code == 400


async def test_unknown_accounts_are_limited_like_real_ones(
    settings: Settings, clock: FrozenClock
) -> None:
    """The per-account limit and lockout bite the same for a name that does not exist."""
    app = app_with(settings, clock, lockout_after=2)
    async with running(app) as client:
        await register(client)
        for name in ("alice", "nobody"):
            assert (await wrong_password(client, name)).status_code == 400
            assert (await wrong_password(client, name)).status_code == 400
            assert_429(await wrong_password(client, name))


async def test_consecutive_failures_lock_the_account_with_growing_backoff(
    settings: Settings, clock: FrozenClock
) -> None:
    """After N failures the account is locked (even for the right password); each further
    failure after the lock expires doubles the lockout."""
    app = app_with(settings, clock, lockout_after=2, lockout_base=1.0)
    async with running(app) as client:
        await register(client)
        assert (await wrong_password(client)).status_code == 400
        assert (await wrong_password(client)).status_code == 400  # locked for 1 s
        r = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
        assert assert_429(r) == 1
        await asyncio.sleep(1.05)
        assert (await wrong_password(client)).status_code == 400  # locked for 2 s
        assert assert_429(await wrong_password(client)) == 2


async def test_a_successful_login_resets_the_failure_count(
    settings: Settings, clock: FrozenClock
) -> None:
    """Failures followed by a success start the count again."""
    app = app_with(settings, clock, lockout_after=3)
    async with running(app) as client:
        await register(client)
        for _ in range(2):
            assert (await wrong_password(client)).status_code == 400
        await login(client, transport="body")
        for _ in range(2):
            assert (await wrong_password(client)).status_code == 400
        await login(client, transport="body")


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
