"""Every keyfob error gets the same answer from every edge: the server, the Starlette
integration and the FastAPI integration all render through one function."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route

from keyfob import Principal
from keyfob.exceptions import (
    ExpiredAccessToken,
    KeyfobError,
    MissingCredentials,
    PermissionDenied,
    RateLimited,
    StoreUnavailable,
)
from keyfob.integrations.fastapi import BearerError, KeyfobAuth
from keyfob.integrations.starlette import KeyfobAuthenticationError, on_auth_error
from keyfob.server import create_app
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

MakeError = Callable[[], KeyfobError]

# Characters the body and the challenge must each make safe, the same way everywhere.
DESCRIPTION = 'it went "wrong" \\ naïve\n'


def every_error_class() -> Iterator[type[KeyfobError]]:
    """KeyfobError and all its subclasses, found by walking the tree (new ones included)."""
    pending = [KeyfobError]
    while pending:
        cls = pending.pop(0)
        yield cls
        pending.extend(cls.__subclasses__())


def _cases() -> Iterator[object]:
    for cls in every_error_class():
        yield pytest.param(lambda cls=cls: cls(DESCRIPTION), id=cls.__name__)
    yield pytest.param(
        lambda: PermissionDenied(DESCRIPTION, required_scopes=("admin", 'not"a-scope', "read")),
        id="PermissionDenied-with-scopes",
    )


Answer = tuple[int, bytes, list[tuple[str, str]]]


def answer(r: httpx.Response) -> Answer:
    return r.status_code, r.content, sorted((k.lower(), v) for k, v in r.headers.items())


async def fetch(app: Starlette) -> httpx.Response:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        return await c.get("/boom")


def server_app(make: MakeError) -> Starlette:
    async def boom(request: Request) -> Response:
        raise make()

    app = create_app(FAST_SETTINGS, MemoryStore(), FrozenClock())
    app.add_route("/boom", boom)
    return app


def starlette_app(make: MakeError) -> Starlette:
    class RefusingBackend(AuthenticationBackend):
        async def authenticate(
            self, conn: HTTPConnection
        ) -> tuple[AuthCredentials, BaseUser] | None:
            raise KeyfobAuthenticationError(make())

    async def boom(request: Request) -> Response:
        raise AssertionError("the middleware answers first")

    middleware = Middleware(
        AuthenticationMiddleware, backend=RefusingBackend(), on_error=on_auth_error
    )
    return Starlette(routes=[Route("/boom", boom)], middleware=[middleware])


class _Verifier:
    async def verify_access_token_fresh(self, token: str) -> Principal:
        raise AssertionError("not called")


def fastapi_app(make: MakeError) -> FastAPI:
    app = FastAPI()
    KeyfobAuth(_Verifier()).install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise BearerError(make())

    return app


ADAPTERS = {"server": server_app, "starlette": starlette_app, "fastapi": fastapi_app}


@pytest.mark.parametrize("make", list(_cases()))
async def test_every_error_is_answered_alike_by_every_edge(
    make: MakeError, caplog: pytest.LogCaptureFixture
) -> None:
    """Status, JSON body and headers are identical through the server, the Starlette
    integration and the FastAPI integration, and each logs a fault exactly once."""
    exc = make()
    fault = exc.status_code >= 500 and exc.retry_after is None  # an outage is not a fault
    answers: dict[str, Answer] = {}
    for name, build in ADAPTERS.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="keyfob"):
            r = await fetch(build(make))
        errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
        assert len(errors) == (1 if fault else 0), name
        answers[name] = answer(r)

    assert answers["starlette"] == answers["server"]
    assert answers["fastapi"] == answers["server"]

    r = httpx.Response(answers["server"][0], content=answers["server"][1])
    headers = dict(answers["server"][2])
    body = r.json()
    assert set(body) == {"error", "error_description"}
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store" and headers["pragma"] == "no-cache"
    if fault:
        assert (r.status_code, body) == (
            500,
            {"error": "server_error", "error_description": "internal error"},
        )
        assert set(headers) == {"content-type", "content-length", "cache-control", "pragma"}
        return
    assert (r.status_code, body["error"]) == (exc.status_code, exc.error)
    assert body["error_description"] == "it went 'wrong' ' na've'"
    assert ("www-authenticate" in headers) == (exc.challenge() is not None)
    assert ("retry-after" in headers) == (exc.retry_after is not None)


async def test_challenges_follow_rfc_6750() -> None:
    """No error code without credentials, invalid_token for a refused token, and
    insufficient_scope naming the valid scope tokens needed (RFC 6750 §3.1)."""

    async def challenge(exc: KeyfobError) -> str:
        return (await fetch(server_app(lambda: exc))).headers["www-authenticate"]

    assert await challenge(MissingCredentials("none")) == 'Bearer realm="keyfob"'
    assert await challenge(ExpiredAccessToken("too old")) == (
        'Bearer realm="keyfob", error="invalid_token", error_description="too old"'
    )
    needed = PermissionDenied("needs admin", required_scopes=("admin", 'x"y', "read"))
    assert await challenge(needed) == (
        'Bearer realm="keyfob", error="insufficient_scope", '
        'error_description="needs admin", scope="admin read"'
    )
    assert await challenge(PermissionDenied("no")) == (
        'Bearer realm="keyfob", error="insufficient_scope", error_description="no"'
    )


async def test_retry_after_is_a_whole_number_of_seconds() -> None:
    """Retry-After is at least 1 second, for a busy store and a rate limit alike."""
    for exc in (StoreUnavailable("down", retry_after=0), RateLimited("slow", retry_after=7)):
        r = await fetch(server_app(lambda exc=exc: exc))
        assert r.headers["retry-after"] == str(max(1, exc.retry_after or 0))
