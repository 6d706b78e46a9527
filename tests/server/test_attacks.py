"""The attack list of spec §7, one regression test each: forged, altered and malformed
tokens and bodies are refused with a 4xx — never a 5xx — and never touch a real session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette

from keyfob.core.refresh_tokens import TOKEN_LENGTH
from keyfob.testing import FrozenClock

from .conftest import CSRF, bearer, login, register

JSON = {"Content-Type": "application/json"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "==")))


def unsigned(header: dict[str, object], claims: dict[str, object], signature: bytes) -> str:
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(claims).encode())
    return f"{h}.{p}.{b64(signature)}"


@pytest.fixture
async def session(client: httpx.AsyncClient) -> dict[str, str]:
    """A live session: its access token, refresh token and the signing key's kid."""
    await register(client)
    body = (await login(client, transport="body")).json()
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    return {**body, "kid": kid}


async def assert_refused_access_token(client: httpx.AsyncClient, token: str) -> None:
    r = await client.get("/auth/me", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_alg_none_is_refused(client: httpx.AsyncClient, session: dict[str, str]) -> None:
    """An unsigned token (alg none) is refused."""
    claims = claims_of(session["access_token"])
    for signature in (b"", b"x"):
        token = unsigned({"alg": "none", "typ": "at+jwt", "kid": session["kid"]}, claims, signature)
        await assert_refused_access_token(client, token)


async def test_hs256_with_the_public_key_is_refused(
    client: httpx.AsyncClient, session: dict[str, str]
) -> None:
    """HS256 "signed" with the published public key (algorithm confusion) is refused."""
    jwk = (await client.get("/.well-known/jwks.json")).json()["keys"][0]
    public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": session["kid"]}
    claims = claims_of(session["access_token"])
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(claims).encode())
    mac = hmac.new(pem, f"{h}.{p}".encode(), hashlib.sha256).digest()
    await assert_refused_access_token(client, f"{h}.{p}.{b64(mac)}")


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c"])
async def test_key_urls_and_embedded_keys_are_refused(
    client: httpx.AsyncClient, session: dict[str, str], member: str
) -> None:
    """A token that points at its own key (jku, x5u) or embeds one (jwk, x5c) is refused."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    value: object = "https://evil.example/keys.json"
    if member == "jwk":
        value = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    elif member == "x5c":
        value = ["MIIB"]
    token = jwt.encode(
        claims_of(session["access_token"]),
        attacker,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": session["kid"], member: value},
    )
    await assert_refused_access_token(client, token)


@pytest.mark.parametrize(
    "defect",
    ["typ JWT", "no typ", "unknown kid", "wrong aud", "wrong iss", "expired", "not yet valid"],
)
async def test_tokens_signed_with_the_real_key_but_one_defect_are_refused(
    app: Starlette,
    client: httpx.AsyncClient,
    session: dict[str, str],
    clock: FrozenClock,
    defect: str,
) -> None:
    """A correctly signed token with one thing wrong (typ, kid, aud, iss, exp, nbf) is refused."""
    key = app.state.manager.signing_keys.signing_key(clock.now())
    claims = claims_of(session["access_token"])
    headers: dict[str, object] = {"typ": "at+jwt", "kid": key.kid}
    if defect == "typ JWT":
        headers["typ"] = "JWT"
    elif defect == "no typ":
        headers = {"kid": key.kid}
    elif defect == "unknown kid":
        headers["kid"] = "not-a-kid"
    elif defect == "wrong aud":
        claims["aud"] = "https://other.example"
    elif defect == "wrong iss":
        claims["iss"] = "https://other.example"
    elif defect == "expired":
        claims["exp"] = int(clock.now()) - 3600
    elif defect == "not yet valid":
        claims["nbf"] = int(clock.now()) + 3600
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers=headers)
    await assert_refused_access_token(client, token)
    # The control: the same recipe without the defect is accepted.
    good = jwt.encode(
        claims_of(session["access_token"]),
        key.private_key,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": key.kid},
    )
    assert (await client.get("/auth/me", headers=bearer(good))).status_code == 200


async def test_expired_access_token_is_refused(
    client: httpx.AsyncClient, session: dict[str, str], clock: FrozenClock
) -> None:
    """An access token past exp (plus leeway) is refused; before that it works."""
    clock.advance(900)
    assert (
        await client.get("/auth/me", headers=bearer(session["access_token"]))
    ).status_code == 200
    clock.advance(31)
    await assert_refused_access_token(client, session["access_token"])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-5],
        lambda t: t[: len(t) // 2],
        lambda t: t + "A",
        lambda t: t.replace(".", "", 1),
        lambda t: t + "." + t,
        lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),
        lambda t: t.split(".")[0] + "." + "A" * 6000 + "." + t.split(".")[2],
        lambda t: "eyJ" + "A" * 9000,
        lambda t: "é" + t,
        lambda t: "",
    ],
    ids=[
        "truncated",
        "halved",
        "extended",
        "two-segments",
        "doubled",
        "altered-signature",
        "inflated-payload",
        "oversized",
        "non-ascii",
        "empty",
    ],
)
async def test_malformed_access_tokens_are_refused(
    client: httpx.AsyncClient, session: dict[str, str], mangle: Callable[[str], str]
) -> None:
    """Truncated, altered, oversized or otherwise malformed access tokens answer 401."""
    token = mangle(session["access_token"])
    r = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {token}".strip().encode("utf-8")}
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: "kfrt_" + b64(secrets.token_bytes(97))[: TOKEN_LENGTH - 5],
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t[:20] + ("A" if t[20] != "A" else "B") + t[21:],
        lambda t: t[:-10],
        lambda t: t + "AAAA",
        lambda t: t.removeprefix("kfrt_"),
        lambda t: "kfrt_" + "A" * 9000,
        lambda t: "",
        lambda t: "kfrt_" + "é" * (TOKEN_LENGTH - 5),
    ],
    ids=[
        "random",
        "last-char",
        "middle-char",
        "truncated",
        "extended",
        "no-prefix",
        "oversized",
        "empty",
        "non-ascii",
    ],
)
async def test_forged_refresh_tokens_are_refused_and_harmless(
    client: httpx.AsyncClient, session: dict[str, str], forge: Callable[[str], str]
) -> None:
    """A forged refresh token is invalid_grant on every route, and the real session lives on."""
    forged = forge(session["refresh_token"])
    r = await client.post("/auth/refresh", json={"refresh_token": forged})
    assert r.status_code == 400 and r.json()["error"] in {"invalid_grant", "invalid_request"}
    r = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": forged}
    )
    assert r.status_code == 400 and r.json()["error"] in {"invalid_grant", "invalid_request"}
    r = await client.post("/auth/logout", json={"refresh_token": forged})
    assert r.status_code == 204
    r = await client.post(
        "/auth/refresh",
        headers={**CSRF, "Cookie": f"__Secure-keyfob_refresh={forged}".encode()},
    )
    assert r.status_code == 400
    r = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert r.status_code == 200, "a forgery must never affect a real session"


BAD_JSON_BODIES = [
    b"",
    b"null",
    b"[]",
    b'["username", "password"]',
    b"123",
    b"1e999",
    b"1" * 5000,
    b'"a string"',
    b"true",
    b"{",
    b"{}}",
    b"\xff\xfe\x00garbage",
    b"\xef\xbb\xbf{}",
    '{"username": "\u202e\u0000\ufeff", "password": "\U0001f600"}'.encode(),
    b'{"username": "\\ud800", "password": "\\udfff\\ud800xxxxxxxx"}',
    b'{"username": "a", "username": "b", "password": "xxxxxxxxxxxx"}',
    b'{"username": 1, "password": 2}',
    b'{"username": ["a"], "password": {"b": 1}}',
    b'{"username": null, "password": null}',
    b'{"refresh_token": 12345}',
    b'{"refresh_token": ["kfrt_"]}',
    b'{"transport": "carrier-pigeon", "username": "a", "password": "b"}',
    b"[" * 8000 + b"]" * 8000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    bytes(range(256)),
]


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login", "/auth/refresh", "/auth/logout"])
async def test_malformed_json_is_a_4xx(client: httpx.AsyncClient, path: str) -> None:
    """Non-JSON, non-objects, wrong member types, unicode garbage and deep nesting: 4xx."""
    for body in BAD_JSON_BODIES:
        r = await client.post(path, content=body, headers=JSON)
        assert 400 <= r.status_code < 500 or (r.status_code == 204 and path == "/auth/logout"), (
            body[:40],
            r.status_code,
            r.text,
        )
        if r.status_code != 204:
            assert set(r.json()) == {"error", "error_description"}


BAD_FORMS = [
    b"",
    b"grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
    b"grant_type=password&username=a&password=b",
    b"grant_type=authorization_code&code=x",
    b"grant_type=refresh_token",
    b"grant_type=&refresh_token=",
    b"grant_type=refresh_token&refresh_token=%ff%fe",
    b"grant_type=refresh_token&refresh_token=x&client_id=%0a%0d",
    b"\xff\xfe=\xfd",
    b"&&&===&&&",
    b"&".join(b"f%d=1" % i for i in range(100)),
    b"grant_type=refresh_token&refresh_token=" + b"A" * 15000,
    b'{"grant_type": "refresh_token"}',
]


async def test_malformed_token_requests_are_a_4xx(client: httpx.AsyncClient) -> None:
    """Repeated, missing, unsupported and undecodable /oauth/token parameters: 4xx."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for body in BAD_FORMS:
        r = await client.post("/oauth/token", content=body, headers=form)
        assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text)
        assert set(r.json()) == {"error", "error_description"}


async def test_garbage_headers_are_a_4xx(client: httpx.AsyncClient) -> None:
    """Odd Authorization, Cookie, Origin and Content-Type headers never cause a 5xx."""
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/auth/me", {"Authorization": "Bearer " + "A" * 100_000}),
        ("GET", "/auth/me", {"Authorization": "Bearer"}),
        ("GET", "/auth/me", {"Authorization": "Bearer a b c"}),
        ("GET", "/auth/me", {"Authorization": "bearer\tabc"}),
        ("POST", "/auth/refresh", {**CSRF, "Cookie": ";;;==;__Secure-keyfob_refresh"}),
        ("POST", "/auth/refresh", {**CSRF, "Cookie": '__Secure-keyfob_refresh=""'}),
        (
            "POST",
            "/auth/refresh",
            {**CSRF, "Cookie": "__Secure-keyfob_refresh=x", "Origin": "http://[::1"},
        ),
        ("POST", "/auth/logout", {**CSRF, "Cookie": "__Secure-keyfob_refresh=x", "Origin": "\x7f"}),
        ("POST", "/auth/login", {"Content-Type": "application/json; charset"}),
        ("POST", "/auth/login", {"Content-Type": ";;;"}),
        ("POST", "/auth/login", {"Content-Type": "application/json", "Content-Length": "abc"}),
        ("DELETE", "/auth/sessions/" + "é" * 10, {"Authorization": "Bearer x"}),
    ]
    for method, path, headers in cases:
        r = await client.request(method, path, headers=headers)
        assert 400 <= r.status_code < 500, (method, path, headers, r.status_code, r.text)
