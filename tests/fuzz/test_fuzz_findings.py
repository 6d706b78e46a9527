"""One test per defect that fuzzing found, in the words of the contract it broke
(the raw inputs are kept in fuzz/regressions/<target>/ and replayed beside these)."""

from __future__ import annotations

import json

import pytest

from keyfob.core.access_tokens import AccessTokenVerifier
from keyfob.core.jws import b64url_encode, sign_bytes
from keyfob.core.keys import KeySet, generate_key
from keyfob.exceptions import InvalidClaims
from keyfob.testing import FrozenClock
from keyfob.transports.csrf import normalize_origin, origin_allowed
from keyfob.verifier import Verifier

NOW = 1_800_000_000.0
ISSUER, AUDIENCE = "https://issuer.example", "https://api.example"


def _signed_token(**claims: object) -> tuple[KeySet, str]:
    key = generate_key("ES256", now=NOW - 60, activates_at=NOW - 60, kek=b"k" * 32)
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    payload = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "u", "sid": "s", "client_id": "c", "jti": "j",
        "scope": "", "iat": int(NOW), "exp": int(NOW) + 60, **claims,
    }  # fmt: skip
    signing_input = ".".join(b64url_encode(json.dumps(part).encode()) for part in (header, payload))
    signature = sign_bytes(key, signing_input.encode())
    return KeySet([key]), f"{signing_input}.{b64url_encode(signature)}"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [10**400, -(10**400), 2**53 + 1])
def test_a_numeric_date_too_large_for_a_float_is_invalid_claims(claim: str, value: int) -> None:
    """A correctly signed token whose exp, iat or nbf has hundreds of digits is refused as
    InvalidClaims; it used to pass the claim checks and then raise OverflowError in the
    Verifier's cache (a 500 on any protected route)."""
    keys, token = _signed_token(**{claim: value})
    with pytest.raises(InvalidClaims):
        AccessTokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE).verify(token, now=NOW)
    verifier = Verifier(issuer=ISSUER, audience=AUDIENCE, keys=keys, clock=FrozenClock(NOW))
    with pytest.raises(InvalidClaims):
        verifier.verify_access_token(token)


def test_numeric_dates_within_range_still_verify() -> None:
    """The bound is far beyond any real date: a token valid until 2**53 s verifies."""
    keys, token = _signed_token(exp=2**53, nbf=NOW - 1.5)
    claims = AccessTokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE).verify(token, now=NOW)
    assert claims.exp == 2**53


@pytest.mark.parametrize(
    "origin",
    [
        "https://n*\x00 \x89",  # the fuzzer's input: NUL, space and a C1 control in the host
        "http://a b",
        "https://évil.example",  # browsers send A-labels, never raw Unicode
        "http://a\\b",
        "http://a%2fb",
        "http://[fe80::1%25eth0]",
        "http://a..b",
    ],
)
def test_an_origin_whose_host_is_not_a_dns_name_or_ip_literal_is_refused(origin: str) -> None:
    """normalize_origin answers "" for such hosts (it used to answer a "normal form" that
    did not even normalize to itself), so they never match an allowed origin."""
    assert normalize_origin(origin) == ""
    assert not origin_allowed(origin, allowed_origins={origin}, own_origin=origin)


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("HTTPS://App.Example:443/", "https://app.example"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://my_dev-host.localhost:3000", "http://my_dev-host.localhost:3000"),
        ("https://example.com.", "https://example.com."),
    ],
)
def test_real_origins_keep_their_normal_form(origin: str, normal: str) -> None:
    """Origins browsers send still normalize, and the normal form is a fixed point."""
    assert normalize_origin(origin) == normal
    assert normalize_origin(normal) == normal
