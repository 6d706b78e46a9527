"""KeyfobBackend: Starlette apps verify keyfob access tokens locally (RFC 6750 answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyfob import Principal, SessionManager, StoreUnavailable
from keyfob.integrations.starlette import KeyfobBackend, KeyfobUser, keyfob_middleware
from keyfob.testing import FrozenClock

from ..conftest import PASSWORD


@requires("authenticated")
async def whoami(request: Request) -> JSONResponse:
    user = request.user
    assert isinstance(user, KeyfobUser)
    return JSONResponse(
        {"user": user.principal.user_id, "sid": user.principal.sid, "scopes": request.auth.scopes}
    )


@requires(["authenticated", "admin"])
async def admin(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def make_app(verifier: object) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/admin", admin)],
        middleware=[keyfob_middleware(verifier)],  # type: ignore[arg-type]
    )


@pytest.fixture
async def client(manager: SessionManager) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(make_app(manager))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        yield c


async def access_token(manager: SessionManager, scope: str = "") -> tuple[str, str]:
    user = await manager.register("alice", PASSWORD)
    pair = await manager.issue(user.id, scope=scope)
    return pair.access_token, pair.session.sid


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_authenticates(
    client: httpx.AsyncClient, manager: SessionManager
) -> None:
    """A valid access token makes request.user a KeyfobUser carrying the Principal."""
    token, sid = await access_token(manager)
    res = await client.get("/whoami", headers=bearer(token))
    assert res.status_code == 200
    assert res.json()["sid"] == sid
    assert res.json()["scopes"] == ["authenticated"]


async def test_token_scopes_become_credentials(
    client: httpx.AsyncClient, manager: SessionManager
) -> None:
    """The token's scopes are the request's credentials, so @requires can check them."""
    token, _ = await access_token(manager, scope="admin read")
    res = await client.get("/admin", headers=bearer(token))
    assert res.status_code == 200
    who = await client.get("/whoami", headers=bearer(token))
    assert who.json()["scopes"] == ["authenticated", "admin", "read"]


async def test_missing_scope_is_refused(client: httpx.AsyncClient, manager: SessionManager) -> None:
    """Without the scope a @requires route refuses (Starlette's own 403)."""
    token, _ = await access_token(manager)
    assert (await client.get("/admin", headers=bearer(token))).status_code == 403


async def test_no_credentials_is_anonymous(client: httpx.AsyncClient) -> None:
    """No Authorization header: the request is anonymous, and @requires decides."""
    assert (await client.get("/whoami")).status_code == 403


async def test_other_scheme_is_anonymous(client: httpx.AsyncClient) -> None:
    """A Basic header is not keyfob's to judge: anonymous, not a 401."""
    res = await client.get("/whoami", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert res.status_code == 403


@pytest.mark.parametrize(
    "value",
    ["Bearer not-a-jwt", "Bearer a.b.c", "Bearer " + "x" * 9000, "Bearer"],
)
async def test_bad_token_is_401_with_challenge(client: httpx.AsyncClient, value: str) -> None:
    """A refused token answers 401 JSON with WWW-Authenticate error="invalid_token"."""
    res = await client.get("/whoami", headers={"Authorization": value})
    assert res.status_code == 401
    assert res.json()["error"] == "invalid_token"
    assert res.json()["error_description"]
    assert res.headers["www-authenticate"].startswith(
        'Bearer realm="keyfob", error="invalid_token"'
    )
    assert res.headers["cache-control"] == "no-store"


async def test_expired_token_is_401(
    client: httpx.AsyncClient, manager: SessionManager, clock: FrozenClock
) -> None:
    """An access token past exp (and the leeway) is refused."""
    token, _ = await access_token(manager)
    clock.advance(manager.settings.access_ttl + manager.settings.leeway + 1)
    res = await client.get("/whoami", headers=bearer(token))
    assert res.status_code == 401
    assert res.json()["error"] == "invalid_token"


async def test_revoked_session_is_401_at_once(
    client: httpx.AsyncClient, manager: SessionManager
) -> None:
    """After the session is revoked its unexpired access token is refused immediately."""
    token, sid = await access_token(manager)
    assert (await client.get("/whoami", headers=bearer(token))).status_code == 200
    await manager.revoke_session(sid)
    res = await client.get("/whoami", headers=bearer(token))
    assert res.status_code == 401
    assert "revoked" in res.json()["error_description"]


class ManagerBackedVerifier:
    """A verifier that is not a SessionManager (like a JWKS-backed one in another service)."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.calls = 0

    async def verify_access_token_fresh(self, token: str) -> Principal:
        self.calls += 1
        return self.manager.verify_access_token(token)


async def test_any_verifier_works(manager: SessionManager) -> None:
    """The backend takes any object with verify_access_token_fresh, not only a manager."""
    verifier = ManagerBackedVerifier(manager)
    token, sid = await access_token(manager)
    transport = httpx.ASGITransport(make_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        res = await c.get("/whoami", headers=bearer(token))
    assert res.json()["sid"] == sid
    assert verifier.calls == 1


class DownVerifier:
    async def verify_access_token_fresh(self, token: str) -> Principal:
        raise StoreUnavailable("the store is down", retry_after=7)


async def test_store_down_is_503_with_retry_after() -> None:
    """A verifier whose store is unreachable answers 503 with Retry-After, not a 500."""
    transport = httpx.ASGITransport(make_app(DownVerifier()))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        res = await c.get("/whoami", headers=bearer("a.b.c"))
    assert res.status_code == 503
    assert res.headers["retry-after"] == "7"
    assert res.json()["error"] == "temporarily_unavailable"


def test_backend_refuses_a_non_verifier() -> None:
    """A misconfiguration is caught when the app is built, not at the first request."""
    with pytest.raises(TypeError):
        KeyfobBackend(object())  # type: ignore[arg-type]
