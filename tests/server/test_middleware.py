"""Middleware of the user's sees every request; without any, the hot routes skip the stack."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from keyfob import Settings
from keyfob.server import create_app
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import bearer, login, register, running

HOT = ["POST /auth/refresh", "POST /oauth/token", "GET /auth/me"]


class Recorder:
    """ASGI middleware that notes the method and path of every HTTP request it sees."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


async def call_the_hot_routes(client: httpx.AsyncClient) -> None:
    """Refresh by body, then by the token endpoint, then /auth/me: each answers 200."""
    await register(client)
    token = (await login(client, transport="body")).json()["refresh_token"]
    r = await client.post("/auth/refresh", json={"refresh_token": token})
    assert r.status_code == 200, r.text
    form = {"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]}
    r = await client.post("/oauth/token", data=form)
    assert r.status_code == 200, r.text
    r = await client.get("/auth/me", headers=bearer(r.json()["access_token"]))
    assert r.status_code == 200, r.text


async def test_middleware_given_to_create_app_runs_on_the_hot_routes(
    settings: Settings, clock: FrozenClock
) -> None:
    """create_app(middleware=...) puts it in front of refresh, token and /auth/me too."""
    seen: list[str] = []
    app = create_app(settings, MemoryStore(), clock, middleware=[Middleware(Recorder, seen=seen)])
    async with running(app) as client:
        await call_the_hot_routes(client)
    assert [request for request in seen if request in HOT] == HOT


async def test_middleware_added_before_startup_runs_on_the_hot_routes(
    settings: Settings, clock: FrozenClock
) -> None:
    """app.add_middleware before the first request works the same."""
    seen: list[str] = []
    app = create_app(settings, MemoryStore(), clock)
    app.add_middleware(Recorder, seen=seen)
    async with running(app) as client:
        await call_the_hot_routes(client)
    assert [request for request in seen if request in HOT] == HOT


async def test_without_user_middleware_the_hot_routes_skip_the_stack(
    settings: Settings, clock: FrozenClock
) -> None:
    """With no middleware of the user's, refresh, token and /auth/me never enter
    Starlette's stack; every other route still does."""
    app: Starlette = create_app(settings, MemoryStore(), clock)
    seen: list[str] = []
    async with running(app) as client:
        assert (await client.get("/.well-known/jwks.json")).status_code == 200
        assert app.middleware_stack is not None, "built by the first request"
        app.middleware_stack = Recorder(app.middleware_stack, seen)
        await call_the_hot_routes(client)
    assert seen == ["POST /auth/register", "POST /auth/login"]
