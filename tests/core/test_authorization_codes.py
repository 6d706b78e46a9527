"""The pure rules of authorization codes and PKCE (RFC 6749 §4.1, RFC 7636), as tables."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from keyfob.core.authorization_codes import (
    CODE_LENGTH,
    CODE_TTL,
    AuthorizationCode,
    check_code_challenge,
    check_exchange,
    code_hash,
    new_authorization_code,
    new_code,
    s256_challenge,
)
from keyfob.core.clients import FIRST_PARTY_CLIENT, Client
from keyfob.exceptions import InvalidGrant, InvalidRequest, InvalidScope, UnauthorizedClient

NOW = 1_800_000_000.0
REDIRECT = "https://app.example/cb"
# RFC 7636 Appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

PUBLIC = Client(
    client_id="app",
    name="App",
    auth_method="none",
    redirect_uris=(REDIRECT, "http://127.0.0.1/cb"),
    grant_types=("authorization_code", "refresh_token"),
    scopes=("openid", "read"),
    created_at=0.0,
)
CONFIDENTIAL_NO_PKCE = dataclasses.replace(
    PUBLIC, client_id="backend", auth_method="client_secret_basic", require_pkce=False
)


def code(**changes: Any) -> AuthorizationCode:
    base = AuthorizationCode(
        code_hash=b"\x01" * 32,
        client_id="app",
        user_id="u1",
        redirect_uri=REDIRECT,
        scope="openid",
        code_challenge=CHALLENGE,
        nonce=None,
        auth_time=NOW - 3,
        created_at=NOW,
        expires_at=NOW + CODE_TTL,
    )
    return dataclasses.replace(base, **changes)


def test_the_rfc_7636_example() -> None:
    """Appendix B of RFC 7636: this verifier has this S256 challenge."""
    assert s256_challenge(VERIFIER) == CHALLENGE


def test_codes_are_random_prefixed_and_hashed() -> None:
    """A code is kfac_ + 43 base64url characters (256 bits); its hash is its SHA-256."""
    codes = {new_code() for _ in range(100)}
    assert len(codes) == 100
    for c in codes:
        assert c.startswith("kfac_") and len(c) == CODE_LENGTH == 48
        assert code_hash(c) == hashlib.sha256(c.encode()).digest()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "kfac_",
        "kfac_" + "A" * 42,
        "kfac_" + "A" * 44,
        "kfrt_" + "A" * 43,
        "KFAC_" + "A" * 43,
        "kfac_" + "A" * 42 + "=",
        "kfac_" + "A" * 42 + "+",
        "kfac_" + "A" * 42 + "é",
        "kfac_" + "A" * 42 + "\n",
    ],
)
def test_malformed_codes_have_no_hash(text: str) -> None:
    """Anything not shaped like a code is refused before hashing or any store read."""
    assert code_hash(text) is None


@pytest.mark.parametrize(
    ("challenge", "method", "message"),
    [
        (CHALLENGE, None, "S256"),
        (CHALLENGE, "plain", "S256"),
        (CHALLENGE, "s256", "S256"),
        (CHALLENGE[:-1], "S256", "43 base64url"),
        (CHALLENGE + "A", "S256", "43 base64url"),
        (CHALLENGE[:-1] + "=", "S256", "43 base64url"),
        (CHALLENGE[:-1] + ".", "S256", "43 base64url"),
        ("", "S256", "43 base64url"),
    ],
)
def test_code_challenges_refused(challenge: str, method: str | None, message: str) -> None:
    """S256 only (a missing method means plain, RFC 7636 §4.3) and a challenge some
    verifier can match."""
    with pytest.raises(InvalidRequest, match=message):
        check_code_challenge(challenge, method)


def test_a_good_code_challenge() -> None:
    check_code_challenge(CHALLENGE, "S256")


def test_new_authorization_code_binds_the_request() -> None:
    """The code carries the request's values, a normalised scope and a 60 s lifetime."""
    made = new_authorization_code(
        code_hash=b"\x02" * 32,
        client=PUBLIC,
        user_id="u1",
        redirect_uri="http://127.0.0.1:8123/cb",
        scope="read openid",
        code_challenge=CHALLENGE,
        nonce="abc",
        auth_time=NOW - 10,
        now=NOW,
    )
    assert made == AuthorizationCode(
        code_hash=b"\x02" * 32,
        client_id="app",
        user_id="u1",
        redirect_uri="http://127.0.0.1:8123/cb",
        scope="openid read",
        code_challenge=CHALLENGE,
        nonce="abc",
        auth_time=NOW - 10,
        created_at=NOW,
        expires_at=NOW + 60,
    )


@pytest.mark.parametrize(
    ("client", "changes", "error"),
    [
        (FIRST_PARTY_CLIENT, {}, UnauthorizedClient),
        (PUBLIC, {"redirect_uri": "https://app.example/cb2"}, InvalidRequest),
        (PUBLIC, {"redirect_uri": "https://app.example/CB"}, InvalidRequest),
        (PUBLIC, {"redirect_uri": "https://app.example/cb#x"}, InvalidRequest),
        (PUBLIC, {"scope": "write"}, InvalidScope),
        (PUBLIC, {"code_challenge": None}, InvalidRequest),
        (PUBLIC, {"code_challenge": "short"}, InvalidRequest),
        (PUBLIC, {"nonce": "n" * 513}, InvalidRequest),
        (PUBLIC, {"nonce": "tab\there"}, InvalidRequest),
    ],
)
def test_new_authorization_code_refuses(
    client: Client, changes: dict[str, Any], error: type[Exception]
) -> None:
    args: dict[str, Any] = {
        "code_hash": b"\x02" * 32,
        "client": client,
        "user_id": "u1",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "code_challenge": CHALLENGE,
        "nonce": None,
        "auth_time": NOW,
        "now": NOW,
    }
    args.update(changes)
    with pytest.raises(error):
        new_authorization_code(**args)


def test_no_challenge_only_for_clients_that_may_skip_pkce() -> None:
    made = new_authorization_code(
        code_hash=b"\x02" * 32,
        client=CONFIDENTIAL_NO_PKCE,
        user_id="u1",
        redirect_uri=REDIRECT,
        scope="",
        code_challenge=None,
        nonce=None,
        auth_time=NOW,
        now=NOW,
    )
    assert made.code_challenge is None and made.scope == ""


#: (what is wrong, the code's changes, the client, the request's changes, the message).
REFUSED: list[tuple[str, dict[str, Any], Client, dict[str, Any], str]] = [
    ("other-client", {}, CONFIDENTIAL_NO_PKCE, {}, "another client"),
    ("expired-at-ttl", {}, PUBLIC, {"now": NOW + CODE_TTL}, "expired"),
    ("expired-after", {}, PUBLIC, {"now": NOW + 3600}, "expired"),
    ("no-redirect-uri", {}, PUBLIC, {"redirect_uri": None}, "redirect_uri is required"),
    ("other-redirect-uri", {}, PUBLIC, {"redirect_uri": REDIRECT + "?x"}, "differs"),
    (
        "other-port",
        {"redirect_uri": "http://127.0.0.1:1/cb"},
        PUBLIC,
        {"redirect_uri": "http://127.0.0.1:2/cb"},
        "differs",
    ),
    ("no-verifier", {}, PUBLIC, {"code_verifier": None}, "required"),
    ("short-verifier", {}, PUBLIC, {"code_verifier": VERIFIER[:42]}, "43-128"),
    ("long-verifier", {}, PUBLIC, {"code_verifier": "a" * 129}, "43-128"),
    ("bad-charset", {}, PUBLIC, {"code_verifier": VERIFIER[:-1] + "/"}, "43-128"),
    ("non-ascii", {}, PUBLIC, {"code_verifier": VERIFIER[:-1] + "é"}, "43-128"),
    ("plain-verifier", {}, PUBLIC, {"code_verifier": CHALLENGE}, "does not match"),
    ("wrong-verifier", {}, PUBLIC, {"code_verifier": "x" * 43}, "does not match"),
    (
        "pkce-required-none-made",
        {"code_challenge": None},
        PUBLIC,
        {"code_verifier": None},
        "did not use PKCE",
    ),
    (
        "downgrade",
        {"code_challenge": None, "client_id": "backend"},
        CONFIDENTIAL_NO_PKCE,
        {},
        "no PKCE",
    ),
]


@pytest.mark.parametrize(
    ("code_changes", "client", "request_changes", "message"),
    [r[1:] for r in REFUSED],
    ids=[r[0] for r in REFUSED],
)
def test_check_exchange_refuses(
    code_changes: dict[str, Any], client: Client, request_changes: dict[str, Any], message: str
) -> None:
    request: dict[str, Any] = {
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        "now": NOW + 1,
    }
    request.update(request_changes)
    with pytest.raises(InvalidGrant, match=message):
        check_exchange(code(**code_changes), client=client, **request)


@pytest.mark.parametrize(
    ("code_changes", "client", "verifier", "now"),
    [
        ({}, PUBLIC, VERIFIER, NOW),
        ({}, PUBLIC, VERIFIER, NOW + CODE_TTL - 0.001),
        ({"client_id": "backend", "code_challenge": None}, CONFIDENTIAL_NO_PKCE, None, NOW),
        (
            {"code_challenge": s256_challenge("~" * 128)},
            PUBLIC,
            "~" * 128,
            NOW,
        ),
        (
            {"code_challenge": s256_challenge("a-b.c_d~" * 6)},
            PUBLIC,
            "a-b.c_d~" * 6,
            NOW,
        ),
    ],
)
def test_check_exchange_accepts(
    code_changes: dict[str, Any], client: Client, verifier: str | None, now: float
) -> None:
    check_exchange(
        code(**code_changes), client=client, redirect_uri=REDIRECT, code_verifier=verifier, now=now
    )
