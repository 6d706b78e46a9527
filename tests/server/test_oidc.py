"""OpenID Connect over HTTP: id_tokens from the refresh grant, discovery, userinfo and
RP-initiated logout, with bad input of every kind (no token, wrong scope, revoked
session, malformed hints, unregistered and open-redirect URIs)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oidc import discovery, rpinitiated
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as jrfc_jwt
from joserfc.jwk import KeySet as JoseKeySet
from starlette.applications import Starlette

from keyfob import Settings
from keyfob.core.models import EventKind, TokenPair
from keyfob.manager import SessionManager
from keyfob.server import create_app
from keyfob.server.responses import CONTENT_SECURITY_POLICY
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from .conftest import PASSWORD, bearer, running

ISSUER = "https://testserver"
SPA_ORIGIN = "https://spa.example"
BACK = "https://rp.example/signed-out"
TOKEN = "/oauth/token"
USERINFO = "/oauth/userinfo"
LOGOUT = "/oauth/logout"


@pytest.fixture
def settings() -> Settings:
    # RS256 id tokens beside ES256 access tokens: the default, with a key of each.
    return FAST_SETTINGS.replace(id_token_alg="RS256", cors_origins=(SPA_ORIGIN,))


class Oidc:
    """An app with a registered OIDC client ("rp") and a user ("alice")."""

    def __init__(self, http: httpx.AsyncClient, manager: SessionManager, clock: FrozenClock):
        self.http = http
        self.manager = manager
        self.clock = clock
        self.user_id = ""

    async def setup(self) -> None:
        await self.manager.clients.register(
            client_id="rp",
            name="relying party",
            auth_method="none",
            scopes=["openid", "profile", "read"],
            post_logout_redirect_uris=[BACK, "http://127.0.0.1/done"],
        )
        await self.manager.clients.register(client_id="other", name="other", auth_method="none")
        self.user_id = (await self.manager.register("alice", PASSWORD)).id

    async def session(self, scope: str = "openid profile", client_id: str = "rp") -> TokenPair:
        return await self.manager.issue(self.user_id, client_id=client_id, scope=scope)

    async def refresh(self, pair: TokenPair, client_id: str = "rp") -> dict[str, Any]:
        r = await self.http.post(
            TOKEN,
            data={
                "grant_type": "refresh_token",
                "refresh_token": pair.refresh_token.value,
                "client_id": client_id,
            },
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def id_token(self, pair: TokenPair, client_id: str = "rp") -> str:
        return str((await self.refresh(pair, client_id))["id_token"])

    async def is_live(self, pair: TokenPair) -> bool:
        session = await self.manager.store.get_session(pair.session.sid)
        assert session is not None
        return session.revoked_at is None

    async def jwks(self) -> JoseKeySet:
        return JoseKeySet.import_key_set((await self.http.get("/.well-known/jwks.json")).json())


@pytest.fixture
async def oidc(app: Starlette, clock: FrozenClock) -> AsyncIterator[Oidc]:
    async with running(app) as client:
        fixture = Oidc(client, app.state.manager, clock)
        await fixture.setup()
        yield fixture


# --- id_token on refresh ---------------------------------------------------------------------


async def test_a_refresh_of_an_openid_session_carries_an_rs256_id_token(oidc: Oidc) -> None:
    """The id_token verifies with the published JWKS (RS256, beside the ES256 access
    token's key) and passes Authlib's code-flow checks, at_hash of the new access token
    included; auth_time is the login, there is no nonce, sid names the session."""
    pair = await oidc.session()
    body = await oidc.refresh(pair)
    jwks = await oidc.jwks()
    decoded = jrfc_jwt.decode(body["id_token"], jwks, algorithms=["RS256"])
    assert decoded.header["typ"] == "JWT"
    access = jrfc_jwt.decode(body["access_token"], jwks, algorithms=["ES256"])
    assert access.header["alg"] == "ES256"  # access tokens keep the configured algorithm
    claims = decoded.claims
    assert claims["sid"] == pair.session.sid and claims["sub"] == oidc.user_id
    assert claims["aud"] == claims["azp"] == "rp" and claims["iss"] == ISSUER
    assert claims["auth_time"] == int(pair.session.created_at)
    assert "nonce" not in claims
    CodeIDToken(
        claims,
        decoded.header,
        options={"iss": {"essential": True, "value": ISSUER}, "aud": {"value": "rp"}},
        params={"client_id": "rp", "access_token": body["access_token"]},
    ).validate(now=int(oidc.clock.now()))


async def test_no_id_token_without_the_openid_scope(oidc: Oidc) -> None:
    """A session without openid refreshes as before: no id_token."""
    body = await oidc.refresh(await oidc.session(scope="read"))
    assert "id_token" not in body and body["scope"] == "read"


async def test_the_jwks_publishes_a_key_per_algorithm(oidc: Oidc) -> None:
    """With KEYFOB_ID_TOKEN_ALG other than KEYFOB_SIGNING_ALG both keys are published."""
    keys = (await oidc.http.get("/.well-known/jwks.json")).json()["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]


# --- discovery -------------------------------------------------------------------------------


async def test_discovery_passes_authlibs_openid_checks(oidc: Oidc) -> None:
    """Authlib's OpenID Provider and RP-initiated logout metadata checks pass on every
    member this branch serves. authorization_endpoint and response_types_supported come
    with the authorization-code grant (another branch); once it is merged, the whole of
    validate() must pass, which the last line then checks."""
    r = await oidc.http.get("/.well-known/openid-configuration")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=3600"
    document = r.json()
    assert document == (await oidc.http.get("/.well-known/oauth-authorization-server")).json()
    assert document["userinfo_endpoint"] == ISSUER + USERINFO
    assert document["end_session_endpoint"] == ISSUER + LOGOUT
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["scopes_supported"] == ["openid", "profile"]
    metadata = discovery.OpenIDProviderMetadata(document)
    failing = set()
    for name in dir(metadata):
        if name.startswith("validate_"):
            try:
                getattr(metadata, name)()
            except ValueError:
                failing.add(name.removeprefix("validate_"))
    assert failing <= {"authorization_endpoint", "response_types_supported"}
    rpinitiated.OpenIDProviderMetadata(document).validate_end_session_endpoint()
    if not failing:
        metadata.validate(metadata_classes=[rpinitiated.OpenIDProviderMetadata])


async def test_discovery_is_cors_enabled_like_the_other_metadata(oidc: Oidc) -> None:
    """A browser app on an allowed origin may read the OpenID configuration."""
    r = await oidc.http.get("/.well-known/openid-configuration", headers={"Origin": SPA_ORIGIN})
    assert r.headers["access-control-allow-origin"] == SPA_ORIGIN


async def test_discovery_names_the_configured_id_token_algorithm(clock: FrozenClock) -> None:
    """id_token_signing_alg_values_supported is KEYFOB_ID_TOKEN_ALG, and id tokens use it."""
    app = create_app(FAST_SETTINGS.replace(id_token_alg="Ed25519"), MemoryStore(), clock)
    async with running(app) as http:
        fixture = Oidc(http, app.state.manager, clock)
        await fixture.setup()
        document = (await http.get("/.well-known/openid-configuration")).json()
        assert document["id_token_signing_alg_values_supported"] == ["Ed25519"]
        token = await fixture.id_token(await fixture.session())
        decoded = jrfc_jwt.decode(token, await fixture.jwks(), algorithms=["Ed25519"])
        assert decoded.header["alg"] == "Ed25519"


# --- userinfo --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_userinfo_answers_sub_and_profile_claims(oidc: Oidc, method: str) -> None:
    """With openid and profile: sub, preferred_username and updated_at; never cached."""
    pair = await oidc.session()
    r = await oidc.http.request(method, USERINFO, headers=bearer(pair.access_token))
    assert r.status_code == 200, r.text
    user = await oidc.manager.get_user(oidc.user_id)
    assert user is not None
    assert r.json() == {
        "sub": oidc.user_id,
        "preferred_username": "alice",
        "updated_at": int(user.created_at),
    }
    assert r.headers["cache-control"] == "no-store"


async def test_userinfo_without_profile_answers_sub_only(oidc: Oidc) -> None:
    """openid alone: the subject and nothing else."""
    pair = await oidc.session(scope="openid")
    r = await oidc.http.get(USERINFO, headers=bearer(pair.access_token))
    assert r.json() == {"sub": oidc.user_id}


async def test_userinfo_without_a_token_is_a_bare_challenge(oidc: Oidc) -> None:
    """No credentials: 401 with a challenge naming no error (RFC 6750 §3.1)."""
    r = await oidc.http.get(USERINFO)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="keyfob"'


async def test_userinfo_needs_the_openid_scope(oidc: Oidc) -> None:
    """A valid token without openid is 403 insufficient_scope, naming the scope needed."""
    pair = await oidc.session(scope="read")
    r = await oidc.http.get(USERINFO, headers=bearer(pair.access_token))
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="openid"' in challenge


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Bearer a.b.c", "Basic cnA6eA==", "Bearer " + "x" * 9000],
)
async def test_userinfo_refuses_bad_tokens(oidc: Oidc, authorization: str) -> None:
    """Garbage, another scheme or an oversized header: 401, never a 5xx."""
    r = await oidc.http.get(USERINFO, headers={"Authorization": authorization})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer ")


async def test_userinfo_refuses_a_revoked_session(oidc: Oidc) -> None:
    """Once the session is revoked its access token is invalid_token at once."""
    pair = await oidc.session()
    await oidc.manager.revoke_session(pair.session.sid)
    r = await oidc.http.get(USERINFO, headers=bearer(pair.access_token))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_userinfo_is_cors_enabled(oidc: Oidc) -> None:
    """A browser app on an allowed origin reads userinfo; its preflight is answered."""
    pair = await oidc.session()
    headers = {**bearer(pair.access_token), "Origin": SPA_ORIGIN}
    r = await oidc.http.get(USERINFO, headers=headers)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SPA_ORIGIN
    preflight = await oidc.http.options(
        USERINFO,
        headers={
            "Origin": SPA_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    refused = await oidc.http.options(
        USERINFO,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 403


# --- RP-initiated logout ---------------------------------------------------------------------


def assert_page(r: httpx.Response, status: int, text: str) -> None:
    """An HTML page under the pages' security headers, never cached, never a redirect."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert "location" not in r.headers
    assert text in r.text


async def test_logout_with_a_hint_ends_the_session(oidc: Oidc) -> None:
    """GET with id_token_hint: the session ends (reason logout), a signed-out page."""
    pair = await oidc.session()
    hint = await oidc.id_token(pair)
    r = await oidc.http.get(LOGOUT, params={"id_token_hint": hint})
    assert_page(r, 200, "You have been signed out.")
    assert not await oidc.is_live(pair)
    session = await oidc.manager.store.get_session(pair.session.sid)
    assert session is not None and session.revoked_reason == "logout"
    revokes = await oidc.manager.events(kind=EventKind.REVOKE, sid=pair.session.sid)
    assert revokes and revokes[0].detail.startswith("logout")


async def test_logout_redirects_to_the_registered_uri_with_state(oidc: Oidc) -> None:
    """POST form with a registered post_logout_redirect_uri: 303 there, state passed."""
    pair = await oidc.session()
    hint = await oidc.id_token(pair)
    r = await oidc.http.post(
        LOGOUT,
        data={"id_token_hint": hint, "post_logout_redirect_uri": BACK, "state": "s&t=1 2"},
    )
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == BACK
    assert parse_qs(target.query) == {"state": ["s&t=1 2"]}
    assert r.headers["cache-control"] == "no-store"
    assert not await oidc.is_live(pair)


async def test_logout_accepts_an_expired_hint(oidc: Oidc) -> None:
    """An id_token past its exp still names the session to end (§2)."""
    pair = await oidc.session()
    hint = await oidc.id_token(pair)
    oidc.clock.advance(FAST_SETTINGS.access_ttl * 3)
    r = await oidc.http.get(
        LOGOUT, params={"id_token_hint": hint, "post_logout_redirect_uri": BACK}
    )
    assert r.status_code == 303 and r.headers["location"] == BACK
    assert not await oidc.is_live(pair)


async def test_logout_of_an_ended_session_still_signs_out(oidc: Oidc) -> None:
    """A second logout with the same hint is answered alike: nothing left to end."""
    pair = await oidc.session()
    hint = await oidc.id_token(pair)
    for _ in range(2):
        assert_page(await oidc.http.get(LOGOUT, params={"id_token_hint": hint}), 200, "signed out")


async def test_logout_redirect_by_client_id_without_a_hint(oidc: Oidc) -> None:
    """client_id and one of its registered URIs (loopback: any port) redirect; no
    session is named, so none ends."""
    pair = await oidc.session()
    uri = "http://127.0.0.1:51234/done"
    r = await oidc.http.get(LOGOUT, params={"client_id": "rp", "post_logout_redirect_uri": uri})
    assert r.status_code == 303 and r.headers["location"] == uri
    assert await oidc.is_live(pair)


async def test_logout_without_anything_shows_the_page(oidc: Oidc) -> None:
    """No parameters at all: nothing to end, the signed-out page."""
    assert_page(await oidc.http.get(LOGOUT), 200, "signed out")


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/",
        BACK + "/../../evil",
        BACK + "extra",
        BACK + "?next=https://evil.example",
        BACK + "#frag",
        "https://rp.example@evil.example/signed-out",
        "HTTPS://RP.EXAMPLE/signed-out",
        "//evil.example",
        "javascript:alert(1)",
    ],
)
async def test_logout_never_redirects_to_an_unregistered_uri(oidc: Oidc, uri: str) -> None:
    """Anything but an exact registered URI is a 400 page, and the session stays."""
    pair = await oidc.session()
    hint = await oidc.id_token(pair)
    r = await oidc.http.get(LOGOUT, params={"id_token_hint": hint, "post_logout_redirect_uri": uri})
    assert_page(r, 400, "not registered")
    assert await oidc.is_live(pair)


async def test_another_clients_uri_is_not_registered(oidc: Oidc) -> None:
    """A URI registered for "rp" is refused for a hint of "other"'s session."""
    pair = await oidc.session(scope="openid", client_id="other")
    hint = await oidc.id_token(pair, "other")
    r = await oidc.http.get(
        LOGOUT, params={"id_token_hint": hint, "post_logout_redirect_uri": BACK}
    )
    assert_page(r, 400, "not registered")
    assert await oidc.is_live(pair)


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"id_token_hint": "garbage"}, "not an ID token this server issued"),
        ({"id_token_hint": "a.b.c"}, "not an ID token this server issued"),
        ({"post_logout_redirect_uri": BACK}, "needs an id_token_hint or a client_id"),
        ({"client_id": "nobody"}, "names no registered client"),
        ({"id_token_hint": "x" * 9000}, "longer than 8192"),
        ({"state": "s" * 2000}, "longer than 1024"),
    ],
)
async def test_bad_logout_requests_get_a_400_page(
    oidc: Oidc, params: dict[str, str], text: str
) -> None:
    """Malformed hints, a redirect without a client, unknown clients and oversized values."""
    assert_page(await oidc.http.get(LOGOUT, params=params), 400, text)


async def test_an_access_token_is_not_a_hint(oidc: Oidc) -> None:
    """An access token (typ at+jwt) signed by keyfob is still not an id_token."""
    pair = await oidc.session()
    r = await oidc.http.get(LOGOUT, params={"id_token_hint": pair.access_token})
    assert_page(r, 400, "not an ID token")
    assert await oidc.is_live(pair)


async def test_a_client_id_that_is_not_the_hints_audience_is_refused(oidc: Oidc) -> None:
    """client_id must agree with the id_token's aud; nothing ends otherwise."""
    pair = await oidc.session()
    hint = await oidc.id_token(pair)
    r = await oidc.http.get(LOGOUT, params={"id_token_hint": hint, "client_id": "other"})
    assert_page(r, 400, "not the audience of the ID token")
    assert await oidc.is_live(pair)


async def test_repeated_logout_parameters_are_refused(oidc: Oidc) -> None:
    """Two values of one parameter: which would be meant? 400, in the query and the form."""
    r = await oidc.http.get(LOGOUT + "?state=a&state=b")
    assert_page(r, 400, "repeated")
    r = await oidc.http.post(
        LOGOUT,
        content=b"state=a&state=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_page(r, 400, "repeated")


async def test_a_logout_post_that_is_not_a_form_is_a_415_page(oidc: Oidc) -> None:
    """A JSON body is refused with its status, as a page."""
    r = await oidc.http.post(
        LOGOUT, content=json.dumps({"state": "x"}), headers={"Content-Type": "application/json"}
    )
    assert_page(r, 415, "malformed")


async def test_logout_page_escapes_what_it_echoes(oidc: Oidc) -> None:
    """A parameter name echoed in an error page is HTML-escaped."""
    r = await oidc.http.get(LOGOUT + "?%3Cscript%3E=1&%3Cscript%3E=2")
    assert_page(r, 400, "&lt;script&gt;")
    assert "<script>" not in r.text
