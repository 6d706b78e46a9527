"""The standard endpoints: /oauth/token (RFC 6749 §6), RFC 8414 metadata, the JWKS, the
OpenAPI document, and the demo page."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from keyfob import Settings
from keyfob.core.id_tokens import CLAIMS_SUPPORTED
from keyfob.server import create_app, routes_wellknown
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import bearer, login, register, running

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CHECKOUT_KEYFOB_JS = Path(__file__).resolve().parents[2] / "clients" / "js" / "keyfob.js"


async def body_session(client: httpx.AsyncClient) -> dict[str, str]:
    await register(client)
    return dict((await login(client, transport="body")).json())


async def test_token_endpoint_rotates_a_refresh_token(client: httpx.AsyncClient) -> None:
    """grant_type=refresh_token answers RFC 6749 §5.1 JSON with the rotated token."""
    token = (await body_session(client))["refresh_token"]
    r = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "keyfob"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["refresh_token"] != token
    assert (await client.get("/auth/me", headers=bearer(body["access_token"]))).status_code == 200


async def test_token_endpoint_and_first_party_refresh_share_one_chain(
    client: httpx.AsyncClient,
) -> None:
    """A token rotated by /oauth/token continues at /auth/refresh and back."""
    token = (await body_session(client))["refresh_token"]
    r = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )
    r = await client.post("/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 200
    r = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"refresh_token": "x"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": ""}, "invalid_request"),
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        # keyfob's own first-party client (no client_id) has no authorization codes.
        ({"grant_type": "authorization_code", "code": "x"}, "unauthorized_client"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "kfrt_x"}, "invalid_grant"),
    ],
)
async def test_token_endpoint_errors(
    client: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    """Missing parameters, other grant types and bad tokens get their RFC 6749 §5.2 code."""
    r = await client.post("/oauth/token", data=form)
    assert r.status_code == 400
    assert r.json()["error"] == error


async def test_token_endpoint_refuses_repeated_parameters(client: httpx.AsyncClient) -> None:
    """A parameter sent twice is invalid_request (RFC 6749 §3.2), even with equal values."""
    token = (await body_session(client))["refresh_token"]
    body = f"grant_type=refresh_token&refresh_token={token}&refresh_token={token}"
    r = await client.post("/oauth/token", content=body.encode(), headers=FORM)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )
    assert r.status_code == 200, "a refused request must not have rotated the token"


async def test_token_endpoint_wants_a_form(client: httpx.AsyncClient) -> None:
    """A JSON body at /oauth/token is 415: OAuth token requests are form-encoded."""
    r = await client.post("/oauth/token", json={"grant_type": "refresh_token"})
    assert r.status_code == 415 and r.json()["error"] == "invalid_request"


async def test_metadata_lists_only_what_exists(client: httpx.AsyncClient) -> None:
    """The RFC 8414 document names the issuer, the endpoints, JWKS, the supported grants
    and response types, PKCE S256 only, and the OpenID Connect members; the OpenID
    configuration is the same document."""
    r = await client.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    methods = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
    algs = ["ES256", "Ed25519", "EdDSA", "RS256"]
    assert r.json() == {
        "issuer": "https://testserver",
        "authorization_endpoint": "https://testserver/oauth/authorize",
        "token_endpoint": "https://testserver/oauth/token",
        "jwks_uri": "https://testserver/.well-known/jwks.json",
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint": "https://testserver/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint": "https://testserver/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": methods[1:],
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "keyfob_revocation_feed_endpoint": "https://testserver/oauth/revocations",
        "scopes_supported": ["openid", "profile"],
        "userinfo_endpoint": "https://testserver/oauth/userinfo",
        "end_session_endpoint": "https://testserver/oauth/logout",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],  # FAST_SETTINGS' id_token_alg
        "claims_supported": list(CLAIMS_SUPPORTED),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
    # OIDC Discovery and RFC 8414 serve one document, so they always agree.
    assert (await client.get("/.well-known/openid-configuration")).content == r.content


async def test_jwks_verifies_access_tokens_and_is_cached_briefly(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The JWKS verifies issued tokens and is cacheable for less than the key publish delay."""
    access = (await body_session(client))["access_token"]
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    cache = r.headers["cache-control"]
    assert cache.startswith("public, max-age=")
    assert 0 < int(cache.rpartition("=")[2]) < settings.key_publish_delay
    keys = jwt.PyJWKSet.from_dict(r.json())
    kid = jwt.get_unverified_header(access)["kid"]
    claims = jwt.decode(
        access,
        keys[kid].key,
        algorithms=["ES256"],
        audience="https://testserver",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["iss"] == "https://testserver"


async def test_issuer_defaults_to_localhost(store: MemoryStore, clock: FrozenClock) -> None:
    """Without an issuer setting the app uses http://localhost:8000 and says so."""
    from keyfob.testing import FAST_SETTINGS

    app = create_app(FAST_SETTINGS.replace(issuer=""), store, clock)
    async with running(app) as client:
        r = await client.get("/.well-known/oauth-authorization-server")
    assert r.json()["issuer"] == "http://localhost:8000"
    assert app.state.manager.settings.issuer == "http://localhost:8000"


async def test_openapi_describes_every_route(app: Starlette, client: httpx.AsyncClient) -> None:
    """/openapi.json is OpenAPI 3.1 and documents every API route of the app."""
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {
        (route.path, method)
        for route in app.routes
        if isinstance(route, Route) and route.path != "/"
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert served == documented
    for ops in doc["paths"].values():
        for op in ops.values():
            for status in op["responses"]:
                assert (status.isdigit() and not status.startswith("5")) or status == "503"


async def test_demo_page_and_static_files_are_served(
    settings: Settings, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET / serves static/index.html and /static/* the files beside it (as installed)."""
    (tmp_path / "index.html").write_text("<!doctype html><title>keyfob</title>")
    (tmp_path / "keyfob.js").write_text("export {};")
    monkeypatch.setattr(routes_wellknown, "STATIC_DIR", tmp_path)
    # As in an installed wheel: no checkout around, keyfob.js is the build's copy.
    monkeypatch.setattr(routes_wellknown, "KEYFOB_JS_SOURCE", tmp_path / "absent" / "keyfob.js")
    app = create_app(settings, MemoryStore(), clock)
    assert any(isinstance(r, Mount) and r.path == "/static" for r in app.routes)
    async with running(app) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>keyfob</title>" in page.text
        js = await client.get("/static/keyfob.js")
        assert js.status_code == 200 and js.text == "export {};"
        missing = await client.get("/static/missing.js")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_a_checkout_serves_keyfob_js_from_its_one_source(
    settings: Settings, clock: FrozenClock
) -> None:
    """In a checkout, /static/keyfob.js is clients/js/keyfob.js byte for byte (no copy)."""
    assert CHECKOUT_KEYFOB_JS == routes_wellknown.KEYFOB_JS_SOURCE
    app = create_app(settings, MemoryStore(), clock)
    async with running(app) as client:
        js = await client.get("/static/keyfob.js")
        again = await client.get("/static/keyfob.js", headers={"If-None-Match": js.headers["etag"]})
    assert js.status_code == 200
    assert js.content == CHECKOUT_KEYFOB_JS.read_bytes()
    assert "javascript" in js.headers["content-type"]
    assert again.status_code == 304


async def test_no_demo_page_is_a_json_404(
    settings: Settings, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an index.html, GET / is a JSON 404 like any unknown route."""
    monkeypatch.setattr(routes_wellknown, "STATIC_DIR", tmp_path / "absent")
    app = create_app(settings, MemoryStore(), clock)
    async with running(app) as client:
        r = await client.get("/")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
