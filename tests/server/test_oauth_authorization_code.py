"""The authorization_code grant at /oauth/token (RFC 6749 §4.1.3, RFC 7636 §4.5): codes
made with the manager API, exchanged over HTTP by public (PKCE) and confidential
clients, and every bad input of issue #13 that reaches the token endpoint answered with
an RFC error in JSON, never a 5xx."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import jwt
import pytest
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as jrfc_jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette

from keyfob.core.authorization_codes import CODE_TTL, s256_challenge
from keyfob.core.models import EventKind
from keyfob.manager import SessionManager
from keyfob.testing import FrozenClock

from .conftest import bearer, running

TOKEN = "/oauth/token"
REDIRECT = "https://app.example/cb"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = s256_challenge(VERIFIER)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


class Fixture:
    """An app with a public client (PKCE), a confidential client that may skip PKCE,
    another public client, and a refresh-only confidential client."""

    def __init__(
        self, http: httpx.AsyncClient, manager: SessionManager, clock: FrozenClock
    ) -> None:
        self.http = http
        self.manager = manager
        self.clock = clock
        self.secrets: dict[str, str] = {}

    async def setup(self) -> None:
        clients = self.manager.clients
        for client_id in ("mobile", "other"):
            await clients.register(
                client_id=client_id,
                name=client_id,
                auth_method="none",
                grant_types=["authorization_code", "refresh_token"],
                redirect_uris=[REDIRECT, "http://127.0.0.1/cb"],
                scopes=["openid", "read"],
            )
        for client_id, grants, pkce in (
            ("web", ["authorization_code", "refresh_token"], False),
            ("refresh-only", ["refresh_token"], True),
        ):
            _, secret = await clients.register(
                client_id=client_id,
                name=client_id,
                auth_method="client_secret_basic",
                grant_types=grants,
                redirect_uris=[REDIRECT],
                scopes=["openid", "read"],
                require_pkce=pkce,
            )
            assert secret is not None
            self.secrets[client_id] = secret

    async def code(
        self, client_id: str = "mobile", *, challenge: str | None = CHALLENGE, **kw: str
    ) -> str:
        return await self.manager.create_authorization_code(
            user_id="user-1",
            client_id=client_id,
            redirect_uri=kw.get("redirect_uri", REDIRECT),
            scope=kw.get("scope", "openid read"),
            code_challenge=challenge,
            nonce="nonce-1",
            auth_time=self.manager.clock.now(),
        )

    async def exchange(
        self, code: str, headers: dict[str, str] | None = None, **form: str
    ) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "mobile",
            "code_verifier": VERIFIER,
            **form,
        }
        return await self.http.post(
            TOKEN, data={k: v for k, v in data.items() if v}, headers=headers
        )

    async def refresh(self, refresh_token: str) -> httpx.Response:
        """The refresh grant for the public client "mobile"."""
        return await self.http.post(
            TOKEN,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": "mobile",
            },
        )

    def auth(self, client_id: str) -> dict[str, str]:
        return basic(client_id, self.secrets[client_id])


@pytest.fixture
async def fx(app: Starlette, clock: FrozenClock) -> AsyncIterator[Fixture]:
    async with running(app) as client:
        fixture = Fixture(client, app.state.manager, clock)
        await fixture.setup()
        yield fixture


def assert_error(r: httpx.Response, status: int, error: str, match: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and body["error_description"], body
    assert match in body["error_description"], body
    assert r.headers["cache-control"] == "no-store"


async def test_a_public_client_exchanges_a_code_with_pkce(fx: Fixture) -> None:
    """Public client + S256: tokens of the code's user and scope, the access token names
    the client, and the refresh token then works with the same client."""
    r = await fx.exchange(await fx.code(), headers={"User-Agent": "MobileApp/2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "id_token",  # the scope has openid
    }
    assert body["token_type"] == "Bearer" and body["scope"] == "openid read"
    assert r.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "mobile" and claims["sub"] == "user-1"
    me = await fx.http.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    [session] = await fx.manager.list_sessions("user-1")
    assert session.device.user_agent == "MobileApp/2"
    r = await fx.refresh(body["refresh_token"])
    assert r.status_code == 200, r.text


async def test_the_code_grant_answers_with_the_codes_id_token(fx: Fixture) -> None:
    """OIDC Core §3.1.3.3: with openid in the scope the answer carries an id_token signed
    with a published key, for the client, with the code's nonce and sign-in time and the
    at_hash of the access token beside it; Authlib's code-flow checks pass."""
    signed_in = fx.manager.clock.now()
    code = await fx.code()
    fx.clock.advance(CODE_TTL / 2)  # the exchange comes later than the sign-in
    r = await fx.exchange(code)
    assert r.status_code == 200, r.text
    body = r.json()
    jwks = KeySet.import_key_set((await fx.http.get("/.well-known/jwks.json")).json())
    decoded = jrfc_jwt.decode(body["id_token"], jwks)
    claims = decoded.claims
    assert claims["sub"] == "user-1" and claims["aud"] == claims["azp"] == "mobile"
    assert claims["nonce"] == "nonce-1" and claims["auth_time"] == int(signed_in)
    [session] = await fx.manager.list_sessions("user-1")
    assert claims["sid"] == session.sid
    CodeIDToken(
        claims,
        decoded.header,
        options={"aud": {"value": "mobile"}, "nonce": {"value": "nonce-1"}},
        params={"client_id": "mobile", "nonce": "nonce-1", "access_token": body["access_token"]},
    ).validate(now=int(fx.manager.clock.now()))

    # OIDC Core §12.2: a refreshed id_token names the same sign-in, and has no nonce.
    fx.clock.advance(3600)
    r = await fx.refresh(body["refresh_token"])
    assert r.status_code == 200, r.text
    again = jrfc_jwt.decode(r.json()["id_token"], jwks).claims
    assert again["auth_time"] == int(signed_in) and "nonce" not in again
    assert again["sid"] == session.sid


async def test_no_id_token_without_openid_in_the_codes_scope(fx: Fixture) -> None:
    r = await fx.exchange(await fx.code(scope="read"))
    assert r.status_code == 200, r.text
    assert "id_token" not in r.json() and r.json()["scope"] == "read"


async def test_a_confidential_client_exchanges_a_code(fx: Fixture) -> None:
    """client_secret_basic, with PKCE and (registered so) without."""
    for challenge, verifier in ((CHALLENGE, VERIFIER), (None, "")):
        code = await fx.code("web", challenge=challenge)
        r = await fx.exchange(code, fx.auth("web"), client_id="", code_verifier=verifier)
        assert r.status_code == 200, r.text
        claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
        assert claims["client_id"] == "web"


async def test_a_reused_code_revokes_what_it_issued(fx: Fixture) -> None:
    """RFC 6749 §4.1.2: the second exchange is invalid_grant, and the refresh token and
    access token from the first stop working; a reuse_detected event says why."""
    code = await fx.code()
    first = await fx.exchange(code)
    assert first.status_code == 200, first.text
    tokens = first.json()
    again = await fx.exchange(code)
    assert_error(again, 400, "invalid_grant", "already used")
    r = await fx.refresh(tokens["refresh_token"])
    assert_error(r, 400, "invalid_grant")
    me = await fx.http.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    [event] = await fx.manager.events(kind=EventKind.REUSE_DETECTED)
    assert "authorization_code_reused" in event.detail


#: (what is wrong, form changes, the description's words). The code is the public
#: client "mobile"'s, with the S256 challenge of VERIFIER.
BAD_EXCHANGES: list[tuple[str, dict[str, str], str]] = [
    ("missing-verifier", {"code_verifier": ""}, "code_verifier is required"),
    ("short-verifier", {"code_verifier": VERIFIER[:42]}, "43-128"),
    ("long-verifier", {"code_verifier": "a" * 129}, "43-128"),
    ("verifier-bad-characters", {"code_verifier": VERIFIER[:-1] + "!"}, "43-128"),
    # A client that did "plain" PKCE sends the challenge itself as the verifier.
    ("plain-verifier", {"code_verifier": CHALLENGE}, "does not match"),
    ("mismatched-verifier", {"code_verifier": "M" * 64}, "does not match"),
    ("missing-redirect-uri", {"redirect_uri": ""}, "redirect_uri is required"),
    ("other-redirect-uri", {"redirect_uri": "https://app.example/cb2"}, "differs"),
    ("redirect-uri-prefix", {"redirect_uri": "https://app.example/c"}, "differs"),
    ("redirect-uri-traversal", {"redirect_uri": REDIRECT + "/../evil"}, "differs"),
    ("redirect-uri-fragment", {"redirect_uri": REDIRECT + "#x"}, "differs"),
    ("redirect-uri-userinfo", {"redirect_uri": "https://app.example@evil.example/cb"}, "differs"),
    ("another-clients-code", {"client_id": "other"}, "another client"),
]


@pytest.mark.parametrize(
    ("form", "words"), [b[1:] for b in BAD_EXCHANGES], ids=[b[0] for b in BAD_EXCHANGES]
)
async def test_bad_exchanges_are_invalid_grant_and_spend_the_code(
    fx: Fixture, form: dict[str, str], words: str
) -> None:
    """Each mismatch is 400 invalid_grant saying what is wrong; the code is spent, so
    the right request afterwards is refused too and no session exists."""
    code = await fx.code()
    assert_error(await fx.exchange(code, **form), 400, "invalid_grant", words)
    assert_error(await fx.exchange(code), 400, "invalid_grant", "already used")
    assert await fx.manager.list_sessions("user-1") == []


async def test_an_expired_code(fx: Fixture, clock: FrozenClock) -> None:
    """60 s after it was made, a code is refused as expired."""
    code = await fx.code()
    clock.advance(CODE_TTL)
    assert_error(await fx.exchange(code), 400, "invalid_grant", "expired")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("x", "malformed"),
        ("kfac_" + "A" * 43, "unknown"),
        ("kfac_" + "A" * 5000, "malformed"),
        ("kfrt_" + "A" * 93, "malformed"),
    ],
)
async def test_made_up_codes(fx: Fixture, code: str, words: str) -> None:
    assert_error(await fx.exchange(code), 400, "invalid_grant", words)


async def test_client_authentication_comes_before_the_code(fx: Fixture) -> None:
    """A confidential client with a wrong secret is invalid_client (401) and the code
    is not spent; an unknown client likewise."""
    code = await fx.code("web", challenge=None)
    r = await fx.exchange(code, basic("web", "wrong"), client_id="", code_verifier="")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await fx.exchange(code, client_id="nobody", code_verifier="")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await fx.exchange(code, fx.auth("web"), client_id="", code_verifier="")
    assert r.status_code == 200, r.text


async def test_a_client_not_registered_for_the_grant(fx: Fixture) -> None:
    """A refresh-only client is unauthorized_client for authorization_code."""
    r = await fx.exchange("kfac_" + "A" * 43, fx.auth("refresh-only"), client_id="")
    assert_error(r, 400, "unauthorized_client")


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=authorization_code&code=a&code=b&client_id=mobile",
        "grant_type=authorization_code&code=kfac_x&client_id=mobile&client_id=other",
        "grant_type=authorization_code&code=kfac_x&client_id=mobile"
        "&code_verifier=a&code_verifier=b",
        "grant_type=authorization_code&code=kfac_x&client_id=mobile&redirect_uri=a&redirect_uri=b",
        "grant_type=authorization_code&grant_type=refresh_token&code=x",
    ],
)
async def test_duplicate_parameters_are_invalid_request(fx: Fixture, body: str) -> None:
    """RFC 6749 §3.2: a parameter sent twice is invalid_request."""
    r = await fx.http.post(
        TOKEN, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_error(r, 400, "invalid_request", "repeated")


async def test_a_missing_code(fx: Fixture) -> None:
    r = await fx.http.post(TOKEN, data={"grant_type": "authorization_code", "client_id": "mobile"})
    assert_error(r, 400, "invalid_request", "code is required")


async def test_oversize_parameters_are_refused_not_crashed(fx: Fixture) -> None:
    """A huge verifier or redirect_uri is a 4xx JSON error (413 past the body limit)."""
    code = await fx.code()
    for form in ({"code_verifier": "a" * 10_000}, {"redirect_uri": "https://x/" + "a" * 10_000}):
        r = await fx.exchange(code, **form)
        assert 400 <= r.status_code < 500 and r.json()["error"], r.text
    r = await fx.exchange(code, code_verifier="a" * 2_000_000)
    assert r.status_code == 413 and r.json()["error"] == "invalid_request"
