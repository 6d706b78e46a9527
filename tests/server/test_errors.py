"""Errors as spec §4 says: always JSON {error, error_description}, with the right status
and headers — RFC 6749 §5.2 on token endpoints, RFC 6750 on protected routes, 503 with
Retry-After when the store is down."""

from __future__ import annotations

import httpx
import pytest

from keyfob import Settings, StoreUnavailable
from keyfob.core.models import Session, User
from keyfob.server import create_app
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import CSRF, PASSWORD, another_client, bearer, login, register, running


def assert_json_error(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error and body["error_description"]


def assert_no_store(r: httpx.Response) -> None:
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["pragma"] == "no-cache"


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    """An unknown path answers a JSON 404, not an HTML page."""
    assert_json_error(await client.get("/nowhere"), 404, "not_found")
    assert_json_error(await client.get("/static/nothing.js"), 404, "not_found")


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    """A wrong method answers a JSON 405 with Allow."""
    r = await client.get("/auth/login")
    assert_json_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


async def test_weak_password_says_why(client: httpx.AsyncClient) -> None:
    """A weak password is 400 invalid_request with the policy's message."""
    r = await client.post("/auth/register", json={"username": "alice", "password": "short"})
    assert_json_error(r, 400, "invalid_request")
    assert "at least 10 characters" in r.json()["error_description"]


async def test_duplicate_username_is_409(client: httpx.AsyncClient) -> None:
    """Registering a taken username is 409."""
    await register(client)
    r = await client.post("/auth/register", json={"username": "alice", "password": PASSWORD})
    assert_json_error(r, 409, "invalid_request")


async def test_failed_login_is_the_same_for_unknown_user_and_wrong_password(
    client: httpx.AsyncClient,
) -> None:
    """Wrong password and unknown user get the identical 400 invalid_grant (no enumeration)."""
    await register(client)
    wrong = await client.post("/auth/login", json={"username": "alice", "password": "x" * 12})
    unknown = await client.post("/auth/login", json={"username": "zed", "password": "x" * 12})
    for r in (wrong, unknown):
        assert_json_error(r, 400, "invalid_grant")
        assert_no_store(r)
    assert wrong.json() == unknown.json()


async def test_token_endpoints_are_never_cached(client: httpx.AsyncClient) -> None:
    """Login, refresh and /oauth/token answer no-store + no-cache, on success and on error."""
    await register(client)
    r = await login(client, transport="body")
    assert_no_store(r)
    token = r.json()["refresh_token"]
    r = await client.post("/auth/refresh", json={"refresh_token": token})
    assert_no_store(r)
    r = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
    )
    assert r.status_code == 200 and r.json()["refresh_token"]
    assert_no_store(r)
    for failed in (
        await client.post("/auth/refresh", json={"refresh_token": "nope"}),
        await client.post("/oauth/token", data={"grant_type": "refresh_token"}),
        await client.post("/auth/login", json={}),
    ):
        assert failed.status_code == 400
        assert_no_store(failed)


async def test_missing_access_token_challenge_has_no_error_code(
    client: httpx.AsyncClient,
) -> None:
    """Without credentials, 401 carries a bare Bearer challenge (RFC 6750 §3.1)."""
    r = await client.get("/auth/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="keyfob"'
    r = await client.get("/auth/me", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert r.headers["www-authenticate"] == 'Bearer realm="keyfob"'


async def test_bad_access_token_challenge_names_invalid_token(client: httpx.AsyncClient) -> None:
    """A refused access token gets 401 with error="invalid_token" and a description."""
    r = await client.get("/auth/me", headers=bearer("not.a.jwt"))
    assert_json_error(r, 401, "invalid_token")
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="keyfob", error="invalid_token", error_description="')


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/auth/me", "GET"),
        ("/auth/sessions", "GET"),
        ("/auth/sessions/abc", "DELETE"),
        ("/auth/logout-all", "POST"),
    ],
)
async def test_every_protected_route_needs_a_token(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    """Each protected route answers 401 + WWW-Authenticate without a token."""
    r = await client.request(method, path)
    assert_json_error(r, 401, "invalid_token")
    assert r.headers["www-authenticate"].startswith("Bearer ")


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    """A body over 16 KiB is refused with a JSON 413 before it is parsed."""
    big = {"username": "a", "password": "p" * 20000}
    assert_json_error(await client.post("/auth/login", json=big), 413, "invalid_request")

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 1024

    # Without Content-Length (chunked), the cap applies while reading.
    r = await client.post(
        "/auth/refresh", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_json_error(r, 413, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_wrong_content_type_is_415(client: httpx.AsyncClient, content_type: str) -> None:
    """JSON routes refuse other media types (so no cross-site form can post to them)."""
    r = await client.post(
        "/auth/login",
        content=b'{"username": "a", "password": "b"}',
        headers={"Content-Type": content_type},
    )
    assert_json_error(r, 415, "invalid_request")


class FlakyStore(MemoryStore):
    """A memory store that can be switched off: every call then raises StoreUnavailable."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the database is unreachable", retry_after=3)

    async def rotate(self, sid: str, **kw: object) -> Session | None:  # type: ignore[override]
        self._check()
        return await super().rotate(sid, **kw)  # type: ignore[arg-type]

    async def get_session(self, sid: str) -> Session | None:
        self._check()
        return await super().get_session(sid)

    async def create_session(self, session: Session) -> None:
        self._check()
        await super().create_session(session)

    async def get_user_by_name(self, username: str) -> User | None:
        self._check()
        return await super().get_user_by_name(username)

    async def list_sessions(self, user_id: str, *, now: float) -> list[Session]:
        self._check()
        return await super().list_sessions(user_id, now=now)


async def test_store_outage_is_503_and_nothing_is_half_rotated(
    settings: Settings, clock: FrozenClock
) -> None:
    """With the store down: 503 + Retry-After, the cookie is kept, and the very same
    token refreshes normally once the store is back."""
    store = FlakyStore()
    app = create_app(settings, store, clock)
    async with running(app) as client, another_client(app) as cookieless:
        await register(client)
        access = (await login(client)).json()["access_token"]
        body_token = (await login(cookieless, transport="body")).json()["refresh_token"]
        store.down = True
        for r in (
            await client.post("/auth/refresh", headers=CSRF),
            await cookieless.post("/auth/refresh", json={"refresh_token": body_token}),
            await cookieless.post(
                "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": body_token}
            ),
            await client.post("/auth/login", json={"username": "alice", "password": PASSWORD}),
            await client.get("/auth/sessions", headers=bearer(access)),
        ):
            assert_json_error(r, 503, "temporarily_unavailable")
            assert r.headers["retry-after"] == "3"
            assert "set-cookie" not in r.headers
        # Access tokens are verified without the store.
        assert (await client.get("/auth/me", headers=bearer(access))).status_code == 200
        store.down = False
        assert (await client.post("/auth/refresh", headers=CSRF)).status_code == 200
        r = await cookieless.post("/auth/refresh", json={"refresh_token": body_token})
        assert r.status_code == 200, r.text


async def test_unexpected_failure_is_a_json_500_without_details(
    settings: Settings, clock: FrozenClock
) -> None:
    """A bug surfaces as JSON 500 server_error that reveals nothing of the cause."""

    class BrokenStore(MemoryStore):
        async def get_user_by_name(self, username: str) -> User | None:
            raise RuntimeError("secret internals")

    app = create_app(settings, BrokenStore(), clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            r = await c.post("/auth/login", json={"username": "a", "password": "b" * 10})
    assert_json_error(r, 500, "server_error")
    assert "secret" not in r.text


async def test_a_bug_on_a_hot_route_is_a_logged_json_500(
    settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Refresh, token and protected calls skip Starlette's layers; a bug there still ends
    in the same bare JSON 500, and the traceback goes to the log, not to the client."""

    class BrokenStore(MemoryStore):
        async def rotate(self, *args: object, **kwargs: object) -> Session | None:
            raise RuntimeError("secret internals")

    app = create_app(settings, BrokenStore(), clock)
    async with running(app) as client:
        await register(client)
        tokens = (await login(client, transport="body")).json()
        for r in (
            await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
            await client.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            ),
        ):
            assert_json_error(r, 500, "server_error")
            assert_no_store(r)
            assert "secret" not in r.text
    logged = [rec for rec in caplog.records if rec.name == "keyfob.server" and rec.exc_info]
    assert len(logged) == 2
    assert "secret internals" in str(logged[0].exc_info[1])  # type: ignore[index]


async def test_hot_routes_answer_as_the_router_would(client: httpx.AsyncClient) -> None:
    """Other methods on the hot paths still reach Starlette: 405 with Allow, HEAD, errors."""
    r = await client.get("/auth/refresh")
    assert_json_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    assert_json_error(await client.put("/oauth/token"), 405, "method_not_allowed")
    r = await client.head("/auth/me")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = await client.get("/auth/me")
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    assert_json_error(await client.post("/auth/refresh", json={}), 400, "invalid_request")


async def test_the_app_mounted_under_a_prefix_serves_the_hot_routes(
    settings: Settings, store: MemoryStore, clock: FrozenClock
) -> None:
    """Mounted inside another app (a root_path), the hot routes go through Starlette's
    routing, and answer all the same."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    auth = create_app(settings, store, clock)
    outer = Starlette(routes=[Mount("/sso", app=auth)])
    async with auth.router.lifespan_context(auth):
        transport = httpx.ASGITransport(outer)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            r = await c.post("/sso/auth/register", json={"username": "ann", "password": PASSWORD})
            assert r.status_code == 201, r.text
            body = {"username": "ann", "password": PASSWORD, "transport": "body"}
            tokens = (await c.post("/sso/auth/login", json=body)).json()
            r = await c.post("/sso/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert r.status_code == 200, r.text
            r = await c.get("/sso/auth/me", headers=bearer(r.json()["access_token"]))
            assert r.status_code == 200 and r.json()["sub"]
