"""Logging in over an existing refresh cookie (issue 12.8): the login ends the cookie's
session, quietly (reason ``relogin``, no reuse alarm), whatever the cookie is."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from keyfob import EventKind, Secret, Settings
from keyfob.server import create_app
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import CSRF, PASSWORD, login, register, running

COOKIE = "__Secure-keyfob_refresh"


def sid_of(refresh_token: str, app: Starlette) -> str:
    return str(app.state.manager.parse_refresh_token(refresh_token).sid)


async def test_login_ends_the_session_of_the_cookie_it_replaces(
    app: Starlette, client: httpx.AsyncClient, store: MemoryStore
) -> None:
    """The old cookie's session is revoked with reason relogin; the new one works; the
    old token is refused as revoked, without any reuse detection."""
    await register(client)
    await login(client)
    old = client.cookies[COOKIE]
    old_sid = sid_of(old, app)
    await login(client)
    new = client.cookies[COOKIE]
    assert new != old

    session = await store.get_session(old_sid)
    assert session is not None and session.revoked_reason == "relogin"
    assert (await client.post("/auth/refresh", headers=CSRF)).status_code == 200
    manager = app.state.manager
    revokes = await manager.events(kind=EventKind.REVOKE)
    assert [(e.sid, e.detail) for e in revokes] == [(old_sid, "relogin")]
    assert await manager.events(kind=EventKind.REUSE_DETECTED) == []
    assert len(await manager.list_sessions(revokes[0].user_id or "")) == 1


async def test_body_transport_login_ends_the_cookie_session_and_deletes_the_cookie(
    app: Starlette, client: httpx.AsyncClient, store: MemoryStore
) -> None:
    """A login that asks for the token in the body leaves no cookie of its own: the dead
    one is deleted with the answer."""
    await register(client)
    await login(client)
    old_sid = sid_of(client.cookies[COOKIE], app)
    r = await login(client, transport="body")
    assert "refresh_token" in r.json()
    assert "Max-Age=0" in r.headers["set-cookie"]
    session = await store.get_session(old_sid)
    assert session is not None and session.revoked_reason == "relogin"


async def test_a_failed_login_leaves_the_cookie_session_alive(
    app: Starlette, client: httpx.AsyncClient, store: MemoryStore
) -> None:
    """A wrong password ends nothing: the session stays the owner's."""
    await register(client)
    await login(client)
    old_sid = sid_of(client.cookies[COOKIE], app)
    r = await client.post("/auth/login", json={"username": "alice", "password": "wrong" * 3})
    assert r.json()["error"] == "invalid_grant"
    session = await store.get_session(old_sid)
    assert session is not None and session.revoked_at is None


async def test_bad_expired_or_foreign_cookies_are_no_error(
    settings: Settings, clock: FrozenClock
) -> None:
    """A cookie that is garbage, minted by another deployment, or of an expired or
    already-revoked session never makes the login fail."""
    other_secret = Secret("another-deployment-secret-another-deployment-secret")
    other = create_app(settings.replace(secret=other_secret), MemoryStore(), clock)
    async with running(other) as elsewhere:
        await register(elsewhere)
        await login(elsewhere)
        foreign = elsewhere.cookies[COOKIE]

    app = create_app(settings, MemoryStore(), clock)
    async with running(app) as client:
        await register(client)
        await login(client)
        expired = client.cookies[COOKIE]
        clock.advance(settings.absolute_ttl + 1)
        await login(client)  # over an expired session's cookie
        revoked = client.cookies[COOKIE]
        await client.post("/auth/logout", headers=CSRF)
        for value in ("kfrt_garbage", foreign, expired, revoked, "x" * 4000):
            client.cookies.set(COOKIE, value, domain="testserver", path="/auth")
            r = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
            assert r.status_code == 200, (value[:20], r.text)
            client.cookies.clear()
