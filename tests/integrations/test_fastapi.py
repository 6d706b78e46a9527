"""KeyfobAuth and require_session: keyfob's routes and RFC 6750 protection in FastAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from keyfob import ConfigurationError, Principal, SessionManager
from keyfob.integrations.fastapi import KeyfobAuth, require_session
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from ..conftest import PASSWORD

CSRF = {"X-Keyfob-CSRF": "1"}
Session = Annotated[Principal, Depends(require_session())]
Admin = Annotated[Principal, Depends(require_session(scopes=["admin"]))]


def build(auth: KeyfobAuth, *, demo_page: bool = False) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app, demo_page=demo_page)

    @app.get("/private")
    async def private(principal: Session) -> dict[str, str]:
        return {"user": principal.user_id, "sid": principal.sid}

    @app.get("/admin")
    async def admin(principal: Admin) -> dict[str, bool]:
        return {"ok": True}

    return app


async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        # https, so the Secure refresh cookie travels.
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            yield c


@pytest.fixture
def auth(clock: FrozenClock) -> KeyfobAuth:
    return KeyfobAuth.from_settings(FAST_SETTINGS, MemoryStore(), clock=clock)


@pytest.fixture
async def client(auth: KeyfobAuth) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(build(auth)):
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient) -> str:
    res = await client.post("/auth/register", json={"username": "alice", "password": PASSWORD})
    assert res.status_code == 201
    res = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert res.status_code == 200
    token: str = res.json()["access_token"]
    return token


async def test_mounted_routes_and_protected_route(client: httpx.AsyncClient) -> None:
    """Login, a protected route, refresh and logout all work inside the FastAPI app."""
    token = await login(client)
    res = await client.get("/private", headers=bearer(token))
    assert res.status_code == 200
    sid = res.json()["sid"]

    refreshed = await client.post("/auth/refresh", headers=CSRF)
    assert refreshed.status_code == 200
    new_token = refreshed.json()["access_token"]
    assert (await client.get("/private", headers=bearer(new_token))).json()["sid"] == sid

    assert (await client.post("/auth/logout", headers=CSRF)).status_code == 204
    res = await client.get("/private", headers=bearer(new_token))
    assert res.status_code == 401, "logout revokes the session's access tokens at once"


async def test_missing_token_is_401_without_error_code(client: httpx.AsyncClient) -> None:
    """No credentials: 401 and a bare challenge (RFC 6750 §3.1), JSON body."""
    res = await client.get("/private")
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == 'Bearer realm="keyfob"'
    assert res.json()["error"] == "invalid_token"


async def test_bad_token_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    """A refused token: 401 with error="invalid_token" in the challenge and the body."""
    res = await client.get("/private", headers=bearer("a.b.c"))
    assert res.status_code == 401
    assert 'error="invalid_token"' in res.headers["www-authenticate"]
    assert set(res.json()) == {"error", "error_description"}


async def test_missing_scope_is_403_insufficient_scope(client: httpx.AsyncClient) -> None:
    """A valid token without the route's scope: 403 insufficient_scope naming the scope."""
    token = await login(client)
    res = await client.get("/admin", headers=bearer(token))
    assert res.status_code == 403
    assert res.json()["error"] == "insufficient_scope"
    challenge = res.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="admin"' in challenge


async def test_scoped_token_passes(auth: KeyfobAuth, client: httpx.AsyncClient) -> None:
    """A token that carries the scope reaches the route."""
    user = await auth.manager.register("root", PASSWORD)
    pair = await auth.manager.issue(user.id, scope="admin")
    assert (await client.get("/admin", headers=bearer(pair.access_token))).json() == {"ok": True}


async def test_keyfob_errors_render_as_keyfob_json(client: httpx.AsyncClient) -> None:
    """keyfob's own routes keep their JSON errors inside the host app."""
    res = await client.post("/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert res.status_code == 400
    assert res.json()["error"] == "invalid_grant"
    res = await client.post("/auth/refresh", json={"refresh_token": "kfrt_forged"})
    assert res.status_code == 400
    assert res.json()["error"] == "invalid_grant"


async def test_host_keeps_its_own_openapi_and_root(client: httpx.AsyncClient) -> None:
    """FastAPI's /openapi.json is the host's (with the bearer scheme); / is not taken."""
    doc = (await client.get("/openapi.json")).json()
    assert "/private" in doc["paths"]
    assert "keyfob" in doc["components"]["securitySchemes"]
    assert (await client.get("/")).status_code == 404
    assert (await client.get("/.well-known/jwks.json")).json()["keys"]


async def test_demo_page_on_request(auth: KeyfobAuth) -> None:
    """install(app, demo_page=True) also serves the demo page and keyfob.js."""
    async for c in serve(build(auth, demo_page=True)):
        page = await c.get("/")
        assert page.status_code == 200
        assert "keyfob" in page.text
        assert (await c.get("/static/keyfob.js")).status_code == 200


async def test_verify_only_install(manager: SessionManager) -> None:
    """KeyfobAuth(verifier) protects routes without adding keyfob's routes."""
    user = await manager.register("alice", PASSWORD)
    pair = await manager.issue(user.id)
    async for c in serve(build(KeyfobAuth(manager))):
        assert (await c.get("/private", headers=bearer(pair.access_token))).status_code == 200
        assert (await c.post("/auth/login", json={})).status_code == 404
    with pytest.raises(ConfigurationError):
        _ = KeyfobAuth(_Verifier()).manager


class _Verifier:
    async def verify_access_token_fresh(self, token: str) -> Principal:
        raise AssertionError("not called")


async def test_dependency_without_install_is_a_configuration_error() -> None:
    """Forgetting install(app) fails loudly, naming the fix."""
    app = FastAPI()

    @app.get("/private")
    async def private(principal: Session) -> dict[str, str]:
        return {}

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        with pytest.raises(ConfigurationError, match="install"):
            await c.get("/private", headers=bearer("a.b.c"))


@pytest.mark.parametrize("scopes", [[""], ["two words"]])
def test_bad_scope_names_are_refused(scopes: list[str]) -> None:
    """require_session checks its scope names when the route is declared."""
    with pytest.raises(ConfigurationError):
        require_session(scopes=scopes)


async def test_install_takes_the_client_address_from_trusted_proxies(clock: FrozenClock) -> None:
    """keyfob's routes inside a FastAPI app record the client a trusted proxy forwarded
    for (settings.forwarded_allow_ips), and the app's own routes see it too."""
    settings = FAST_SETTINGS.replace(forwarded_allow_ips=("10.0.0.0/8",))
    auth = KeyfobAuth.from_settings(settings, MemoryStore(), clock=clock)
    app = build(auth)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        assert request.client is not None
        return {"client": request.client.host}

    forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.5"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, client=("10.0.0.7", 4444))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            body = {"username": "alice", "password": PASSWORD}
            assert (await c.post("/auth/register", json=body)).status_code == 201
            r = await c.post("/auth/login", json={**body, "transport": "body"}, headers=forwarded)
            assert r.status_code == 200, r.text
            r = await c.get("/auth/sessions", headers=bearer(r.json()["access_token"]))
            assert [s["device"]["ip"] for s in r.json()["sessions"]] == ["203.0.113.5"]
            assert (await c.get("/whoami", headers=forwarded)).json() == {"client": "203.0.113.5"}
