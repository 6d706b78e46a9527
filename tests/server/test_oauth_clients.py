"""Registered clients over HTTP: client authentication at /oauth/token (RFC 6749 §2.3,
RFC 7523), refresh tokens bound to their client, scope narrowing, RFC 7009 revocation
and RFC 7662 introspection, and every bad input as an RFC error in JSON."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette

from keyfob import Settings
from keyfob.core.jwk import public_jwk
from keyfob.core.models import TokenPair
from keyfob.exceptions import ConfigurationError
from keyfob.manager import SessionManager
from keyfob.server import create_app
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import bearer, running

TOKEN = "/oauth/token"
REVOKE = "/oauth/revoke"
INTROSPECT = "/oauth/introspect"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KEY = ec.generate_private_key(ec.SECP256R1())


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: both parts form-urlencoded, then Basic."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


class Fixture:
    """An app with a confidential (Basic), a post, a key and a public client."""

    def __init__(self, client: httpx.AsyncClient, manager: SessionManager) -> None:
        self.http = client
        self.manager = manager
        self.secrets: dict[str, str] = {}

    async def setup(self) -> None:
        clients = self.manager.clients
        for client_id, method in (("conf", "client_secret_basic"), ("post", "client_secret_post")):
            _, secret = await clients.register(
                client_id=client_id, name=client_id, auth_method=method, scopes=["read", "write"]
            )
            assert secret is not None
            self.secrets[client_id] = secret
        _, secret = await clients.register(
            client_id="codeonly",
            name="codeonly",
            auth_method="client_secret_basic",
            grant_types=["authorization_code"],
            redirect_uris=["https://app.example/cb"],
        )
        assert secret is not None
        self.secrets["codeonly"] = secret
        await clients.register(client_id="spa", name="spa", auth_method="none")
        jwks = {"keys": [{**public_jwk(KEY.public_key(), "ES256"), "kid": "k1"}]}
        await clients.register(
            client_id="keyed", name="keyed", auth_method="private_key_jwt", jwks=json.dumps(jwks)
        )

    def auth(self, client_id: str) -> dict[str, str]:
        return basic(client_id, self.secrets[client_id])

    async def session(self, client_id: str, scope: str = "read write") -> TokenPair:
        return await self.manager.issue("user-1", client_id=client_id, scope=scope)

    async def refresh(
        self, token: str, headers: dict[str, str] | None = None, **form: str
    ) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": token, **form}
        return await self.http.post(TOKEN, data=data, headers=headers)


@pytest.fixture
async def fx(app: Starlette) -> AsyncIterator[Fixture]:
    async with running(app) as client:
        fixture = Fixture(client, app.state.manager)
        await fixture.setup()
        yield fixture


def assertion(now: float, **changes: Any) -> str:
    """A client assertion of the "keyed" client, made at ``now``."""
    body = {
        "iss": "keyed",
        "sub": "keyed",
        "aud": "https://testserver/oauth/token",
        "exp": int(now) + 60,
        "iat": int(now),
        "jti": uuid.uuid4().hex,
        **changes,
    }
    return jwt.encode(body, KEY, algorithm="ES256", headers={"kid": "k1"})


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def assert_error(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["error_description"]
    assert r.headers["cache-control"] == "no-store"


def assert_invalid_client(r: httpx.Response) -> None:
    assert_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"] == 'Basic realm="keyfob"'


# the token endpoint


async def test_a_confidential_client_refreshes_with_basic(fx: Fixture) -> None:
    """client_secret_basic: the token rotates and the access token names the real client."""
    pair = await fx.session("conf")
    r = await fx.refresh(pair.refresh_token.value, fx.auth("conf"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "read write"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "conf" and claims["scope"] == "read write"


async def test_client_secret_post_and_a_public_client(fx: Fixture) -> None:
    """client_secret_post sends both in the form; a public client sends client_id only."""
    pair = await fx.session("post")
    r = await fx.refresh(
        pair.refresh_token.value, client_id="post", client_secret=fx.secrets["post"]
    )
    assert r.status_code == 200, r.text
    pair = await fx.session("spa", scope="")
    r = await fx.refresh(pair.refresh_token.value, client_id="spa")
    assert r.status_code == 200, r.text
    assert "scope" not in r.json()
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "spa" and "scope" not in claims


async def test_private_key_jwt(fx: Fixture) -> None:
    """A signed assertion authenticates once; its replay, or one for another audience, not."""
    pair = await fx.session("keyed")
    now = fx.manager.clock.now()
    signed = assertion(now)
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    r = await fx.refresh(pair.refresh_token.value, **form)
    assert r.status_code == 200, r.text
    replay = await fx.refresh(r.json()["refresh_token"], **form)
    assert_invalid_client(replay)
    assert "used before" in replay.json()["error_description"]
    elsewhere = assertion(now, aud="https://elsewhere.example/token")
    r2 = await fx.refresh(
        r.json()["refresh_token"], client_assertion_type=ASSERTION_TYPE, client_assertion=elsewhere
    )
    assert_invalid_client(r2)
    good = assertion(now, aud="https://testserver")
    r3 = await fx.refresh(
        r.json()["refresh_token"],
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=good,
        client_id="keyed",
    )
    assert r3.status_code == 200, r3.text


@pytest.mark.parametrize(
    ("headers", "form"),
    [
        (basic("conf", "wrong"), {}),
        (basic("nobody", "x"), {}),
        (basic("conf", ""), {}),
        (basic("conf", "x" * 300), {}),
        ({"Authorization": "Basic !!!"}, {}),
        ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, {}),
        ({"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}, {}),
        ({"Authorization": "Basic " + "A" * 2000}, {}),
        ({"Authorization": "Bearer something"}, {}),
        ({}, {"client_id": "conf"}),
        ({}, {"client_id": "conf", "client_secret": "wrong"}),
        ({}, {"client_id": "nobody"}),
        ({}, {"client_id": "spa", "client_secret": "anything"}),
        ({}, {"client_id": "post", "client_secret": "x" * 300}),
        ({}, {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "not-a-jwt"}),
        ({}, {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "a.b.c"}),
    ],
)
async def test_failed_client_authentication_is_invalid_client(
    fx: Fixture, headers: dict[str, str], form: dict[str, str]
) -> None:
    """Unknown client, wrong or missing secret, unreadable Basic, other scheme: 401
    invalid_client with a Basic challenge, and the refresh token is not spent."""
    pair = await fx.session("conf")
    r = await fx.refresh(pair.refresh_token.value, headers, **form)
    assert_invalid_client(r)
    r = await fx.refresh(pair.refresh_token.value, fx.auth("conf"))
    assert r.status_code == 200, "a refused request must not rotate the token"


async def test_a_client_must_use_its_registered_method(fx: Fixture) -> None:
    """A Basic client posting its secret in the form (or the reverse) is refused."""
    pair = await fx.session("conf")
    r = await fx.refresh(
        pair.refresh_token.value, client_id="conf", client_secret=fx.secrets["conf"]
    )
    assert_invalid_client(r)
    pair = await fx.session("post")
    assert_invalid_client(await fx.refresh(pair.refresh_token.value, fx.auth("post")))


async def test_a_refresh_token_is_bound_to_its_client(fx: Fixture) -> None:
    """Another client's token is invalid_grant and nothing changes: no rotation, no
    reuse alarm; the first-party API and the anonymous token request are clients too."""
    pair = await fx.session("conf")
    token = pair.refresh_token.value
    for headers, form in [
        ({}, {"client_id": "post", "client_secret": fx.secrets["post"]}),
        ({}, {"client_id": "spa"}),
        ({}, {}),
    ]:
        assert_error(await fx.refresh(token, headers, **form), 400, "invalid_grant")
    r = await fx.http.post("/auth/refresh", json={"refresh_token": token})
    assert_error(r, 400, "invalid_grant")
    r = await fx.refresh(token, fx.auth("conf"))
    assert r.status_code == 200, "the rightful client still holds a live token"
    session = await fx.manager.store.get_session(pair.session.sid)
    assert session is not None and session.revoked_at is None and session.counter == 1
    # And the other way: a first-party token is not a registered client's.
    first_party = await fx.session("keyfob", scope="")
    r = await fx.refresh(first_party.refresh_token.value, fx.auth("conf"))
    assert_error(r, 400, "invalid_grant")


async def test_scope_may_narrow_but_never_widen(fx: Fixture) -> None:
    """scope ⊆ the session's gives an access token of that scope; more is invalid_scope
    and spends nothing; the session keeps its whole scope (RFC 6749 §6)."""
    pair = await fx.session("conf")
    r = await fx.refresh(pair.refresh_token.value, fx.auth("conf"), scope="read")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "read"
    token = r.json()["refresh_token"]
    for scope in ("read admin", "admin", 'bad"scope', "read  write"):
        assert_error(await fx.refresh(token, fx.auth("conf"), scope=scope), 400, "invalid_scope")
    r = await fx.refresh(token, fx.auth("conf"))
    assert r.status_code == 200 and r.json()["scope"] == "read write"


async def test_a_client_not_registered_for_refresh_is_unauthorized(fx: Fixture) -> None:
    """A client registered only for authorization_code cannot use the refresh grant."""
    pair = await fx.session("codeonly")
    r = await fx.refresh(pair.refresh_token.value, fx.auth("codeonly"))
    assert_error(r, 400, "unauthorized_client")


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=refresh_token&refresh_token={t}&client_id=spa&client_id=spa",
        "grant_type=refresh_token&refresh_token={t}&client_id=spa&client_secret=a&client_secret=b",
        "grant_type=refresh_token&grant_type=refresh_token&refresh_token={t}",
        "grant_type=refresh_token&refresh_token={t}&scope=read&scope=write",
    ],
)
async def test_repeated_parameters_are_invalid_request(fx: Fixture, body: str) -> None:
    """Any parameter sent twice is invalid_request (RFC 6749 §3.2)."""
    pair = await fx.session("spa", scope="")
    r = await fx.http.post(TOKEN, content=body.format(t=pair.refresh_token.value), headers=FORM)
    assert_error(r, 400, "invalid_request")


async def test_several_authentication_methods_are_invalid_request(fx: Fixture) -> None:
    """Basic plus a form secret, two Authorization headers, a mismatching client_id, a
    secret without client_id, half an assertion: invalid_request (RFC 6749 §2.3)."""
    token = (await fx.session("conf")).refresh_token.value
    cases: list[tuple[list[tuple[str, str]], dict[str, str]]] = [
        ([("Authorization", fx.auth("conf")["Authorization"])], {"client_secret": "x"}),
        (
            [("Authorization", fx.auth("conf")["Authorization"])],
            {"client_assertion": "a.b.c", "client_assertion_type": ASSERTION_TYPE},
        ),
        ([("Authorization", fx.auth("conf")["Authorization"])], {"client_id": "post"}),
        (
            [
                ("Authorization", fx.auth("conf")["Authorization"]),
                ("Authorization", fx.auth("conf")["Authorization"]),
            ],
            {},
        ),
        ([], {"client_secret": "x"}),
        ([], {"client_assertion": "a.b.c"}),
        ([], {"client_assertion_type": ASSERTION_TYPE}),
        ([], {"client_assertion": "a.b.c", "client_assertion_type": "urn:other"}),
        ([], {"client_assertion": "a.b.c", "client_assertion_type": "x", "client_secret": "y"}),
        ([], {"client_id": "bad\x01id"}),
        ([], {"client_id": "x" * 256}),
    ]
    for headers, extra in cases:
        data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
        request = fx.http.build_request("POST", TOKEN, data=data)
        raw_headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"authorization"]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers]
        request.headers = httpx.Headers(raw_headers)
        r = await fx.http.send(request)
        assert_error(r, 400, "invalid_request")


async def test_oversize_parameters_are_refused(fx: Fixture) -> None:
    """A body over the cap is 413; an overlong client id or token is invalid_request."""
    big = "x" * 20_000
    assert_error(await fx.http.post(TOKEN, data={"grant_type": big}), 413, "invalid_request")
    r = await fx.http.post(REVOKE, data={"token": "y" * 9000, "client_id": "spa"})
    assert_error(r, 400, "invalid_request")
    r = await fx.http.post(INTROSPECT, data={"token": "y" * 9000}, headers=fx.auth("conf"))
    assert_error(r, 400, "invalid_request")


# revocation (RFC 7009)


async def test_revoking_a_refresh_token_ends_its_session(fx: Fixture) -> None:
    """200 with no body; the session is revoked, so the token no longer refreshes."""
    pair = await fx.session("conf")
    r = await fx.http.post(
        REVOKE,
        data={"token": pair.refresh_token.value, "token_type_hint": "refresh_token"},
        headers=fx.auth("conf"),
    )
    assert r.status_code == 200 and r.content == b""
    r = await fx.refresh(pair.refresh_token.value, fx.auth("conf"))
    assert_error(r, 400, "invalid_grant")
    events = await fx.manager.events(sid=pair.session.sid)
    assert [e.detail for e in events] == ["token_revoked"]


async def test_revoking_an_access_token_refuses_it_at_once(fx: Fixture) -> None:
    """An access token's session ends and its sid is in the revoked set at once."""
    pair = await fx.session("spa", scope="")
    assert (await fx.http.get("/auth/me", headers=bearer(pair.access_token))).status_code == 200
    r = await fx.http.post(
        REVOKE,
        data={"token": pair.access_token, "token_type_hint": "access_token", "client_id": "spa"},
    )
    assert r.status_code == 200
    r = await fx.http.get("/auth/me", headers=bearer(pair.access_token))
    assert r.status_code == 401
    assert_error(await fx.refresh(pair.refresh_token.value, client_id="spa"), 400, "invalid_grant")


@pytest.mark.parametrize("token", ["nonsense", "kfrt_" + "A" * 93, "a.b.c", "x"])
async def test_revoking_anything_unknown_is_200(fx: Fixture, token: str) -> None:
    """Unknown or malformed tokens answer 200 like real ones (RFC 7009 §2.2)."""
    r = await fx.http.post(REVOKE, data={"token": token}, headers=fx.auth("conf"))
    assert r.status_code == 200


async def test_a_client_cannot_revoke_another_clients_tokens(fx: Fixture) -> None:
    """200, but the other client's session stays live (refresh and access token)."""
    pair = await fx.session("conf")
    for token in (pair.refresh_token.value, pair.access_token):
        r = await fx.http.post(REVOKE, data={"token": token, "client_id": "spa"})
        assert r.status_code == 200
    assert (await fx.http.get("/auth/me", headers=bearer(pair.access_token))).status_code == 200
    assert (await fx.refresh(pair.refresh_token.value, fx.auth("conf"))).status_code == 200


async def test_revocation_authenticates_confidential_clients(fx: Fixture) -> None:
    """A confidential client's revocation without or with wrong credentials is 401, and
    a request without token is invalid_request."""
    pair = await fx.session("conf")
    for headers, form in [({}, {"client_id": "conf"}), (basic("conf", "wrong"), {})]:
        r = await fx.http.post(
            REVOKE, data={"token": pair.refresh_token.value, **form}, headers=headers
        )
        assert_invalid_client(r)
    assert (await fx.refresh(pair.refresh_token.value, fx.auth("conf"))).status_code == 200
    r = await fx.http.post(REVOKE, data={}, headers=fx.auth("conf"))
    assert_error(r, 400, "invalid_request")


# introspection (RFC 7662)


async def test_introspecting_live_tokens(fx: Fixture) -> None:
    """A current refresh token and a valid access token are active, with their claims."""
    pair = await fx.session("spa")
    r = await fx.http.post(
        INTROSPECT, data={"token": pair.refresh_token.value}, headers=fx.auth("conf")
    )
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    info = r.json()
    assert info["active"] is True and info["token_type"] == "refresh_token"
    assert info["client_id"] == "spa" and info["sub"] == "user-1"
    assert info["scope"] == "read write" and info["sid"] == pair.session.sid
    assert info["exp"] == int(pair.session.expires_at())
    r = await fx.http.post(
        INTROSPECT,
        data={"token": pair.access_token, "client_id": "post", "client_secret": fx.secrets["post"]},
    )
    info = r.json()
    assert info["active"] is True and info["token_type"] == "Bearer"
    assert info["client_id"] == "spa" and info["iss"] == "https://testserver"
    assert info["aud"] == "https://testserver" and info["scope"] == "read write"


async def test_inactive_tokens_all_look_alike(fx: Fixture) -> None:
    """Rotated-away, revoked, forged, malformed and expired tokens are {"active": false}
    and nothing more; a revoked session's access token is inactive at once."""
    pair = await fx.session("spa", scope="")
    rotated = await fx.refresh(pair.refresh_token.value, client_id="spa")
    new_access = rotated.json()["access_token"]
    await fx.manager.revoke_session(pair.session.sid)
    candidates = [
        pair.refresh_token.value,
        rotated.json()["refresh_token"],
        new_access,
        "kfrt_" + "A" * 93,
        "a.b.c",
        "nonsense",
        pair.access_token[:-4] + "AAAA",
    ]
    for token in candidates:
        r = await fx.http.post(INTROSPECT, data={"token": token}, headers=fx.auth("conf"))
        assert r.status_code == 200
        assert r.json() == {"active": False}, token


async def test_introspection_is_for_authenticated_confidential_clients(fx: Fixture) -> None:
    """No credentials, a public client, a wrong secret: 401 invalid_client."""
    pair = await fx.session("spa")
    for headers, form in [
        ({}, {}),
        ({}, {"client_id": "spa"}),
        (basic("conf", "wrong"), {}),
        ({}, {"client_id": "keyfob"}),
    ]:
        r = await fx.http.post(
            INTROSPECT, data={"token": pair.refresh_token.value, **form}, headers=headers
        )
        assert_invalid_client(r)


# the registry's changes reach the token endpoint at once


async def test_a_removed_client_cannot_refresh(fx: Fixture) -> None:
    """Once removed, the client is unknown: invalid_client."""
    pair = await fx.session("spa")
    assert await fx.manager.clients.remove("spa")
    assert_invalid_client(await fx.refresh(pair.refresh_token.value, client_id="spa"))


async def test_a_rotated_secret_replaces_the_old_one_at_once(fx: Fixture) -> None:
    """After rotate_secret the old secret fails and the new one works."""
    pair = await fx.session("conf")
    new = await fx.manager.clients.rotate_secret("conf")
    assert_invalid_client(await fx.refresh(pair.refresh_token.value, fx.auth("conf")))
    r = await fx.refresh(pair.refresh_token.value, basic("conf", new))
    assert r.status_code == 200, r.text


async def test_metadata_lists_the_deployments_scopes() -> None:
    """KEYFOB_SCOPES (space- or comma-separated) becomes scopes_supported, after OpenID
    Connect's openid and profile; a value that is not a scope token is a configuration
    error."""
    settings = Settings.from_env(
        {"store_url": "memory://", "issuer": "https://testserver"},
        environ={"KEYFOB_SCOPES": "read, write openid read", "KEYFOB_SECRET": "x" * 40},
    )
    assert settings.scopes == ("read", "write", "openid")
    async with running(create_app(settings, MemoryStore(), FrozenClock())) as client:
        r = await client.get("/.well-known/oauth-authorization-server")
    assert r.json()["scopes_supported"] == ["openid", "profile", "read", "write"]
    with pytest.raises(ConfigurationError, match="KEYFOB_SCOPES"):
        Settings.from_env(environ={"KEYFOB_SCOPES": 'read bad"scope'})
