"""CORS (spec §8 ``KEYFOB_CORS_ORIGINS``): the public OAuth endpoints, the JWKS and the
metadata answer browsers on the configured origins only; the cookie routes under /auth
never allow CORS; with no origins configured nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from keyfob import Settings
from keyfob.exceptions import ConfigurationError
from keyfob.server import create_app
from keyfob.server.cors import Cors
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from .conftest import PASSWORD, running
from .uvicorn_process import UvicornProcess

SPA = "https://spa.example"
EVIL = "https://evil.example"
PUBLIC = [
    ("POST", "/oauth/token"),
    ("POST", "/oauth/revoke"),
    ("POST", "/oauth/introspect"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
]


@pytest.fixture
def settings() -> Settings:
    return FAST_SETTINGS.replace(cors_origins=(SPA, "http://localhost:3000"))


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, MemoryStore(), FrozenClock())) as client:
        yield client


def preflight(origin: str, method: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


@pytest.mark.parametrize(("method", "path"), PUBLIC)
async def test_preflight_from_an_allowed_origin(
    cors_client: httpx.AsyncClient, method: str, path: str
) -> None:
    """204 naming the origin, the method, the headers a client sends; no credentials."""
    r = await cors_client.options(path, headers=preflight(SPA, method))
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == SPA
    assert method in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "Authorization, Content-Type"
    assert "access-control-allow-credentials" not in r.headers
    assert r.headers["vary"] == "Origin"


@pytest.mark.parametrize(("method", "path"), PUBLIC)
async def test_preflight_from_another_origin_is_403(
    cors_client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Another origin (or none) gets a JSON 403 and no CORS headers."""
    for headers in (preflight(EVIL, method), {"Access-Control-Request-Method": method}):
        r = await cors_client.options(path, headers=headers)
        assert r.status_code == 403
        assert r.json()["error"] == "invalid_request"
        assert "access-control-allow-origin" not in r.headers


async def test_preflight_for_a_method_the_route_does_not_answer(
    cors_client: httpx.AsyncClient,
) -> None:
    """Asking to DELETE the token endpoint is invalid_request, without CORS headers."""
    r = await cors_client.options("/oauth/token", headers=preflight(SPA, "DELETE"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "access-control-allow-origin" not in r.headers


async def test_answers_and_errors_carry_cors_for_allowed_origins_only(
    cors_client: httpx.AsyncClient,
) -> None:
    """Success and error answers name the allowed origin (so the page can read the error)
    and expose WWW-Authenticate; for another origin they vary by Origin but allow none."""
    r = await cors_client.get("/.well-known/jwks.json", headers={"Origin": SPA})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == SPA
    assert r.headers["vary"] == "Origin"
    r = await cors_client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "nobody"},
        headers={"Origin": "HTTP://LOCALHOST:3000"},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "WWW-Authenticate" in r.headers["access-control-expose-headers"]
    r = await cors_client.get("/.well-known/oauth-authorization-server", headers={"Origin": EVIL})
    assert r.status_code == 200 and r.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in r.headers


async def test_a_browser_refresh_through_the_token_endpoint(
    cors_client: httpx.AsyncClient,
) -> None:
    """The cross-origin flow an SPA runs: preflight, then the refresh, readable."""
    await cors_client.post("/auth/register", json={"username": "bo", "password": PASSWORD})
    r = await cors_client.post(
        "/auth/login", json={"username": "bo", "password": PASSWORD, "transport": "body"}
    )
    token = r.json()["refresh_token"]
    r = await cors_client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"Origin": SPA},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == SPA


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/auth/refresh"), ("POST", "/auth/login"), ("POST", "/auth/logout")],
)
async def test_cookie_routes_never_allow_cors(
    cors_client: httpx.AsyncClient, method: str, path: str
) -> None:
    """/auth/* stays same-site: its preflight is refused (403), no CORS header on answers."""
    r = await cors_client.options(path, headers=preflight(SPA, method))
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    r = await cors_client.request(method, path, json={}, headers={"Origin": SPA})
    assert "access-control-allow-origin" not in r.headers


async def test_no_cors_without_origins() -> None:
    """The default (no origins): every preflight refused, no CORS headers anywhere."""
    async with running(create_app(FAST_SETTINGS, MemoryStore(), FrozenClock())) as client:
        for method, path in PUBLIC:
            r = await client.options(path, headers=preflight(SPA, method))
            assert r.status_code == 403
            assert "access-control-allow-origin" not in r.headers
        r = await client.get("/.well-known/jwks.json", headers={"Origin": SPA})
        assert "access-control-allow-origin" not in r.headers and "vary" not in r.headers


@pytest.mark.parametrize("origin", ["*", "spa.example", "https://spa.example/path", "ftp://x"])
def test_unusable_origins_are_refused(origin: str) -> None:
    """A wildcard or anything that is not an origin is a configuration error."""
    with pytest.raises(ConfigurationError, match="KEYFOB_CORS_ORIGINS"):
        Cors([origin])


def test_the_setting_reads_comma_separated_origins() -> None:
    """KEYFOB_CORS_ORIGINS is a comma-separated list."""
    settings = Settings.from_env(
        environ={"KEYFOB_CORS_ORIGINS": "https://a.example, https://b.example/"}
    )
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert Cors(settings.cors_origins).origins == {"https://a.example", "https://b.example"}


@pytest.mark.slow
def test_cors_over_real_http(tmp_path: Path) -> None:
    """Through uvicorn (the hot path): the preflight and the answer of /oauth/token carry
    CORS for the configured origin; /auth/refresh's preflight is refused."""
    with (
        UvicornProcess(tmp_path, env={"KEYFOB_CORS_ORIGINS": SPA}) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        r = http.options("/oauth/token", headers=preflight(SPA, "POST"))
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == SPA
        r = http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": "kfrt_x"},
            headers={"Origin": SPA},
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert r.headers["access-control-allow-origin"] == SPA
        r = http.options("/auth/refresh", headers=preflight(SPA, "POST"))
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
