"""Login throttling (issue 12.2): failures slow down the client that makes them, never
lock the owner out. Per (account, client) progressive waits, a per-account budget across
addresses that known devices (OWASP device cookies) are exempt from, and one
``login_throttled`` security event per throttle."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from keyfob import EventKind, RateLimited, Settings
from keyfob.server import RateLimiter, RateLimits, create_app
from keyfob.server.ratelimit import redis_storage_uri
from keyfob.testing import FrozenClock, MemoryStore
from tests.services import RedisServer

from .conftest import BASE_URL, PASSWORD, register, unlimited
from .test_ratelimit import assert_429

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"


def app_with(settings: Settings, store: MemoryStore, **limits: Any) -> Starlette:
    """An app whose limits are all off but the ones given."""
    return create_app(
        settings, store, FrozenClock(), rate_limits=dataclasses.replace(unlimited(), **limits)
    )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


def client_at(app: Starlette, address: str) -> httpx.AsyncClient:
    """A client (its own cookie jar) whose requests come from ``address``."""
    transport = httpx.ASGITransport(app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


async def attempt(
    client: httpx.AsyncClient, password: str = "W" * 12, username: str = "alice"
) -> httpx.Response:
    return await client.post(
        "/auth/login", json={"username": username, "password": password, "transport": "cookie"}
    )


async def test_failures_from_one_address_do_not_lock_the_owner_out_elsewhere(
    settings: Settings,
) -> None:
    """After the attacker's failures their address waits (even with the right password),
    while the owner, from another address, signs in at once."""
    app = app_with(settings, MemoryStore(), throttle_after=3)
    async with lifespan(app), client_at(app, ATTACKER) as attacker, client_at(app, OWNER) as owner:
        await register(owner)
        for _ in range(3):
            assert (await attempt(attacker)).status_code == 400
        assert assert_429(await attempt(attacker, PASSWORD)) == 1
        assert (await attempt(owner, PASSWORD)).status_code == 200


async def test_each_further_failure_of_the_pair_doubles_its_wait(settings: Settings) -> None:
    """1 s after the threshold, then 2 s after the next failure: a progressive delay."""
    app = app_with(settings, MemoryStore(), throttle_after=2)
    async with lifespan(app), client_at(app, ATTACKER) as attacker:
        await register(attacker)
        assert (await attempt(attacker)).status_code == 400
        assert (await attempt(attacker)).status_code == 400
        assert assert_429(await attempt(attacker)) == 1
        await asyncio.sleep(1.05)
        assert (await attempt(attacker)).status_code == 400
        assert assert_429(await attempt(attacker, PASSWORD)) == 2


async def test_a_successful_login_resets_the_pairs_failures(settings: Settings) -> None:
    """Failures followed by a success from the same client start the count again."""
    app = app_with(settings, MemoryStore(), throttle_after=3)
    async with lifespan(app), client_at(app, OWNER) as owner:
        await register(owner)
        for _ in range(2):
            for _ in range(2):
                assert (await attempt(owner)).status_code == 400
            assert (await attempt(owner, PASSWORD)).status_code == 200


async def test_unknown_and_look_alike_names_are_throttled_like_the_real_one(
    settings: Settings,
) -> None:
    """A name that does not exist waits like a real one (no enumeration), and a
    full-width spelling spends the same account's budget as the plain one."""
    app = app_with(settings, MemoryStore(), throttle_after=2)
    async with lifespan(app), client_at(app, ATTACKER) as attacker:
        await register(attacker)
        for name in ("nobody", "alice"):
            assert (await attempt(attacker, username=name)).status_code == 400
            assert (await attempt(attacker, username=name.upper())).status_code == 400
            assert_429(await attempt(attacker, username=name))
        assert_429(await attempt(attacker, username="\uff41\uff4c\uff49\uff43\uff45"))


async def test_the_account_budget_across_addresses_spares_a_known_device(
    settings: Settings,
) -> None:
    """Failures from many addresses exhaust the account's budget: a new client gets 429,
    but the browser that signed in before (its device cookie) still gets in, from
    anywhere."""
    app = app_with(settings, MemoryStore(), login_failures_per_account="3/hour")
    async with lifespan(app), client_at(app, OWNER) as browser:
        await register(browser)
        r = await attempt(browser, PASSWORD)
        assert r.status_code == 200
        device_cookie = next(
            c for c in r.headers.get_list("set-cookie") if c.startswith("__Secure-keyfob_device=")
        )
        assert "HttpOnly" in device_cookie and "SameSite=Strict" in device_cookie
        assert "Secure" in device_cookie and "Path=/auth" in device_cookie
        for n in range(3):
            async with client_at(app, f"192.0.2.{n + 1}") as bot:
                assert (await attempt(bot)).status_code == 400
        async with client_at(app, "192.0.2.99") as stranger:
            assert_429(await attempt(stranger, PASSWORD))
            # Another account is not affected.
            assert (await attempt(stranger, username="bob")).status_code == 400
        # The owner's browser, moved to another network, keeps its cookie jar.
        moved = client_at(app, "100.64.0.1")
        moved.cookies = browser.cookies
        async with moved:
            assert (await attempt(moved, PASSWORD)).status_code == 200


async def test_a_known_device_is_not_throttled_by_an_attacker_behind_the_same_address(
    settings: Settings,
) -> None:
    """A known device's failures count under its own id: an attacker sharing its
    address (a NAT) and failing does not make it wait."""
    app = app_with(settings, MemoryStore(), throttle_after=2)
    async with lifespan(app), client_at(app, OWNER) as browser, client_at(app, OWNER) as bot:
        await register(browser)
        assert (await attempt(browser, PASSWORD)).status_code == 200
        for _ in range(2):
            assert (await attempt(bot)).status_code == 400
        assert_429(await attempt(bot, PASSWORD))
        assert (await attempt(browser, PASSWORD)).status_code == 200


async def test_a_device_cookie_counts_only_for_its_account_and_cannot_be_forged(
    settings: Settings,
) -> None:
    """Alice's device cookie does not make the browser known to Bob's account, and a
    made-up or altered cookie makes no client known."""
    app = app_with(settings, MemoryStore(), login_failures_per_account="1/hour")
    async with lifespan(app), client_at(app, OWNER) as browser:
        await register(browser, "alice")
        await register(browser, "bob")
        assert (await attempt(browser, PASSWORD, "alice")).status_code == 200
        cookie = browser.cookies["__Secure-keyfob_device"]
        async with client_at(app, ATTACKER) as bot:
            assert (await attempt(bot, username="bob")).status_code == 400
            assert (await attempt(bot, username="alice")).status_code == 400
        assert_429(await attempt(browser, PASSWORD, "bob"))
        device, _, mac = cookie.partition(".")
        for forged in (f"{device}.{mac[::-1]}", f"x{device}.{mac}", "nonsense", "é" * 10):
            async with client_at(app, "100.64.0.2") as other:
                other.cookies.set("__Secure-keyfob_device", forged, domain="testserver")
                assert_429(await attempt(other, PASSWORD, "alice"))


async def test_a_throttle_is_one_security_event(settings: Settings) -> None:
    """When failures start a throttle a ``login_throttled`` event names the account and
    the address; refusals while it lasts add none."""
    store = MemoryStore()
    app = app_with(settings, store, throttle_after=2, login_failures_per_account="4/hour")
    async with lifespan(app), client_at(app, ATTACKER) as attacker:
        user_id = await register(attacker)
        for _ in range(2):
            await attempt(attacker)
        for _ in range(3):
            assert_429(await attempt(attacker))
        events = await store.list_events(kind=EventKind.LOGIN_THROTTLED)
        assert [(e.user_id, e.ip) for e in events] == [(user_id, ATTACKER)]
        assert "from this client" in events[0].detail
        for n in range(2):
            async with client_at(app, f"192.0.2.{n + 1}") as bot:
                await attempt(bot)
        events = await store.list_events(kind=EventKind.LOGIN_THROTTLED)
        assert len(events) == 2
        assert "from all addresses" in events[0].detail


async def test_a_throttle_reaches_a_webhook_endpoint_subscribed_by_default(
    settings: Settings,
) -> None:
    """Someone guessing passwords is news for a person: the ``login.throttled`` webhook
    goes to an endpoint registered with the default event types."""
    from keyfob.webhooks.endpoints import add_endpoint
    from keyfob.webhooks.messages import DEFAULT_EVENT_TYPES

    assert "login.throttled" in DEFAULT_EVENT_TYPES
    store = MemoryStore()
    app = app_with(settings, store, throttle_after=2)
    async with lifespan(app), client_at(app, ATTACKER) as attacker:
        await add_endpoint(store, "https://hooks.example/keyfob", keys=[b"k" * 32], now=0.0)
        await register(attacker)
        for _ in range(3):
            await attempt(attacker)
        deliveries = await store.list_webhook_deliveries()
    assert "login.throttled" in {d.event_type for d in deliveries}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """A limiter on the in-process storage, or on a real Redis."""
    limits = RateLimits(throttle_after=2, login_failures_per_account="5/hour")
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        limits = dataclasses.replace(limits, storage_uri=redis_storage_uri(server.url))
    limiter = RateLimiter(limits)
    try:
        yield limiter
    finally:
        await limiter.aclose()


async def test_throttling_works_on_each_storage(limiter: RateLimiter) -> None:
    """The pair wait and the account budget, with the process's or Redis' counters."""
    name = "user-" + secrets.token_hex(4)
    for _ in range(2):
        await limiter.check_login(ATTACKER, name)
        await limiter.login_failed(ATTACKER, name)
    with pytest.raises(RateLimited) as waited:
        await limiter.check_login(ATTACKER, name)
    assert waited.value.retry_after == 1
    await limiter.check_login(OWNER, name)
    for n in range(3):
        throttle = await limiter.login_failed(f"192.0.2.{n}", name)
    assert throttle is not None and throttle.scope == "account"
    with pytest.raises(RateLimited):
        await limiter.check_login(OWNER, name)
    await limiter.check_login(OWNER, name, device="a-known-device")
