"""Fixtures for the server tests: an app on the memory store, driven in-process.

``httpx.ASGITransport`` does not run the lifespan, so :func:`running` enters the app's
``lifespan_context`` itself (which starts and closes the SessionManager).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette

from keyfob import Settings
from keyfob.server import RateLimits, create_app
from keyfob.testing import FrozenClock, MemoryStore

PASSWORD = "correct horse battery staple"
#: The header a cookie-authenticated request carries (spec §5).
CSRF = {"X-Keyfob-CSRF": "1"}
#: The base URL of in-process requests: https, so the Secure cookie travels.
BASE_URL = "https://testserver"


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


@asynccontextmanager
async def running(app: Starlette, base_url: str = BASE_URL) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` with its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def another_client(app: Starlette, base_url: str = BASE_URL) -> httpx.AsyncClient:
    """A second client (its own cookie jar) for an app whose lifespan is already running."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base_url)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def app(settings: Settings, store: MemoryStore, clock: FrozenClock) -> Starlette:
    return create_app(settings, store, clock)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as c:
        yield c


async def register(client: httpx.AsyncClient, username: str = "alice") -> str:
    """Create an account; return its user id."""
    r = await client.post("/auth/register", json={"username": username, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def login(
    client: httpx.AsyncClient, username: str = "alice", *, transport: str = "cookie"
) -> httpx.Response:
    r = await client.post(
        "/auth/login", json={"username": username, "password": PASSWORD, "transport": transport}
    )
    assert r.status_code == 200, r.text
    return r


def unlimited() -> RateLimits:
    """Rate limits that never bite, for tests about something else."""
    many = "1000000/minute"
    return RateLimits(
        login_per_address=many,
        login_failures_per_account=many,
        register_per_address=many,
        refresh_per_session=many,
        throttle_after=1000000,
    )
