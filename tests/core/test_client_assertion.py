"""``private_key_jwt`` client assertions (RFC 7523 §3): every claim rule, and the JWS policy."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyfob.core.client_assertion import verify_client_assertion
from keyfob.core.jwk import PublicKeySet, public_jwk
from keyfob.exceptions import InvalidClient

NOW = 1_800_000_000
TOKEN_URL = "https://auth.example/oauth/token"
ISSUER = "https://auth.example"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
KEYS = PublicKeySet.from_jwks({"keys": [{**public_jwk(KEY.public_key(), "ES256"), "kid": "k1"}]})


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "app",
        "sub": "app",
        "aud": TOKEN_URL,
        "exp": NOW + 60,
        "iat": NOW,
        "jti": "jti-1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def sign(payload: dict[str, Any], *, key: Any = KEY, alg: str = "ES256", kid: str = "k1") -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def verify(assertion: str, *, max_lifetime: float = 3600) -> Any:
    return verify_client_assertion(
        assertion,
        client_id="app",
        keys=KEYS,
        audiences={TOKEN_URL, ISSUER},
        now=NOW,
        leeway=30,
        max_lifetime=max_lifetime,
    )


def test_a_good_assertion_gives_its_jti_and_expiry() -> None:
    """A correctly signed assertion for the token endpoint passes."""
    used = verify(sign(claims()))
    assert used.jti == "jti-1" and used.expires_at == NOW + 60


@pytest.mark.parametrize("aud", [ISSUER, [TOKEN_URL], ["https://other.example", ISSUER]])
def test_the_issuer_or_token_endpoint_is_a_valid_audience(aud: object) -> None:
    """aud may be the token endpoint or the issuer, alone or in a list."""
    verify(sign(claims(aud=aud)))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"iss": "other"}, "iss and sub"),
        ({"sub": "other"}, "iss and sub"),
        ({"iss": DROP}, "iss and sub"),
        ({"aud": "https://other.example/token"}, "audience"),
        ({"aud": [1, 2]}, "audience"),
        ({"aud": DROP}, "audience"),
        ({"exp": DROP}, "exp"),
        ({"exp": "soon"}, "exp"),
        ({"exp": True}, "exp"),
        ({"exp": NOW - 31}, "expired"),
        ({"exp": NOW + 3600 + 31}, "too long"),
        ({"nbf": NOW + 31}, "nbf"),
        ({"iat": NOW + 31}, "iat"),
        ({"iat": "now"}, "iat"),
        ({"jti": DROP}, "jti"),
        ({"jti": ""}, "jti"),
        ({"jti": "x" * 256}, "jti"),
        ({"jti": 7}, "jti"),
    ],
)
def test_each_claim_rule_refuses(changes: dict[str, Any], why: str) -> None:
    """Wrong iss/sub/aud, bad or far exp, future nbf/iat, missing jti: InvalidClient."""
    with pytest.raises(InvalidClient, match=why):
        verify(sign(claims(**changes)))


def test_signatures_and_headers_follow_the_jws_policy() -> None:
    """Another key, an unknown kid, a key-type mismatch, HS256 and alg none are refused."""
    bad = [
        sign(claims(), key=OTHER_KEY),
        sign(claims(), kid="nope"),
        sign(claims(), key=ed25519.Ed25519PrivateKey.generate(), alg="EdDSA"),
        jwt.encode(claims(), "secret" * 8, algorithm="HS256", headers={"kid": "k1"}),
        jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"}),
        sign(claims(), key=rsa.generate_private_key(65537, 2048), alg="RS256"),
        "not.a.jwt",
        "x" * 5000,
    ]
    for assertion in bad:
        with pytest.raises(InvalidClient, match="not signed by a key of the client"):
            verify(assertion)
