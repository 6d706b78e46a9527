"""Access tokens: the compact JWS parser (core/jws.py), the RFC 9068 claim checks
(core/access_tokens.py) and the store-free :class:`~keyfob.verifier.Verifier`.

Contract (core/access_tokens.py, "Nothing else escapes"): any input ends in claims or in
an :class:`~keyfob.exceptions.InvalidToken` subclass. Accepted claims obey every rule the
verifier documents (issuer, audience, non-empty string claims, finite NumericDates, not
expired, not before its time, the key's own algorithm), and the
:class:`~keyfob.verifier.Verifier` (with its token cache, asked twice) agrees with the
bare verifier on every input.

A fuzzer cannot forge a signature, so besides free text the target signs what it
builds with the real keys: fuzzed header and payload bytes, and payloads assembled from
fuzzed claim values (huge and non-finite numbers, wrong JSON types, missing members).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from keyfob.core.access_tokens import AccessClaims, AccessTokenVerifier
from keyfob.core.jws import b64url_encode, sign_bytes
from keyfob.core.keys import KeySet, SigningKey, generate_key
from keyfob.exceptions import InvalidToken
from keyfob.verifier import Verifier

from ..data import Reader, Writer

__all__ = ["check", "seeds"]

T = TypeVar("T")

NOW = 1_800_000_000.0
ISSUER = "https://issuer.example"
AUDIENCE = "https://api.example"
LEEWAY = 30.0


class _Clock:
    def now(self) -> float:
        return NOW


_KEK = b"\x07" * 32
_KEYS: tuple[SigningKey, ...] = tuple(
    generate_key(alg, now=NOW - 3600, activates_at=NOW - 3600, kek=_KEK)
    for alg in ("ES256", "EdDSA", "RS256")
)
_KEY_SET = KeySet(_KEYS)
_VERIFIER = AccessTokenVerifier(_KEY_SET, issuer=ISSUER, audience=AUDIENCE, leeway=LEEWAY)

_MODES = ("text", "signed_bytes", "signed_claims")
_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "sid", "scope")
# JSON texts a claim may take; "valid" is the right value for that claim.
_VALUES = (
    "absent",
    "valid",
    '""',
    '"x"',
    "null",
    "true",
    "0",
    "-1",
    "1.5",
    "1e999",
    "-1e999",
    "NaN",
    "1" * 400,
    "9" * 4301,
    "[]",
    '["https://api.example"]',
    '["a",["b"]]',
    "{}",
    '"\\ud800"',
    '"\\u0000"',
    "1800000000",
    "1800000000.5",
    "17999999999999999999999",
    "-17999999999999999999999",
)
_HEADERS = (
    "valid",
    "no_typ",
    "typ_application",
    "typ_jwt",
    "other_alg",
    "none_alg",
    "no_kid",
    "unknown_kid",
    "jwk_member",
    "crit_member",
    "kid_number",
)
_SIGNATURES = ("keep", "flip", "empty", "truncate", "other_key")


def _valid_claims() -> dict[str, str]:
    return {
        "iss": json.dumps(ISSUER),
        "sub": '"user-1"',
        "aud": json.dumps(AUDIENCE),
        "exp": str(int(NOW) + 600),
        "iat": str(int(NOW) - 5),
        "nbf": "absent",
        "jti": '"jti-1"',
        "client_id": '"keyfob"',
        "sid": '"c2lkLXNpZC1zaWQtc2lk"',
        "scope": '"openid profile"',
    }


def _header(kind: str, key: SigningKey) -> bytes:
    header: dict[str, object] = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
    if kind == "no_typ":
        del header["typ"]
    elif kind == "typ_application":
        header["typ"] = "Application/AT+JWT"
    elif kind == "typ_jwt":
        header["typ"] = "JWT"
    elif kind == "other_alg":
        header["alg"] = next(k.alg for k in _KEYS if k.alg != key.alg)
    elif kind == "none_alg":
        header["alg"] = "none"
    elif kind == "no_kid":
        del header["kid"]
    elif kind == "unknown_kid":
        header["kid"] = "not-a-kid"
    elif kind == "jwk_member":
        header["jwk"] = {"kty": "EC"}
    elif kind == "crit_member":
        header["crit"] = ["exp"]
    elif kind == "kid_number":
        header["kid"] = 7
    return json.dumps(header).encode()


def _sign(key: SigningKey, header: bytes, payload: bytes, how: str) -> str:
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}"
    signer = _KEYS[(_KEYS.index(key) + 1) % len(_KEYS)] if how == "other_key" else key
    signature = sign_bytes(signer, signing_input.encode("ascii"))
    if how == "flip":
        signature = bytes((signature[0] ^ 1,)) + signature[1:]
    elif how == "empty":
        signature = b""
    elif how == "truncate":
        signature = signature[:-1]
    return f"{signing_input}.{b64url_encode(signature)}"


def check(data: bytes) -> None:
    r = Reader(data)
    mode = r.pick(_MODES)
    if mode == "text":
        token = r.rest_text()
    elif mode == "signed_bytes":
        key = r.pick(_KEYS)
        how = r.pick(_SIGNATURES)
        # "{kid}" stands for the signing key's kid, which changes with every process.
        header = r.raw(256).replace(b"{kid}", key.kid.encode())
        token = _sign(key, header, r.rest(), how)
    else:
        key = r.pick(_KEYS)
        how = r.pick(_SIGNATURES)
        header = _header(r.pick(_HEADERS), key)
        claims = _valid_claims()
        members = []
        for name in _CLAIMS:
            value = r.pick(_VALUES)
            text = claims[name] if value == "valid" else value
            if text != "absent":
                members.append(f"{json.dumps(name)}:{text}")
        payload = ("{" + ",".join(members) + "}").encode()
        token = _sign(key, header, payload, how)
    _check_verify(token)


def _outcome(call: Callable[[], T]) -> T | type[InvalidToken]:
    """What ``call`` returns, or the type of the InvalidToken it raises (anything else
    escapes: a broken contract)."""
    try:
        return call()
    except InvalidToken as exc:
        return type(exc)


def _check_verify(token: str) -> None:
    result = _outcome(lambda: _VERIFIER.verify(token, now=NOW))
    if isinstance(result, AccessClaims):
        _check_claims(token, result)
    else:
        assert isinstance(result, type) and issubclass(result, InvalidToken)
    # The store-free Verifier (with its cache) agrees, on the first call and the second.
    verifier = Verifier(
        issuer=ISSUER, audience=AUDIENCE, keys=_KEY_SET, leeway=LEEWAY, clock=_Clock()
    )
    for _ in range(2):
        principal = _outcome(lambda: verifier.verify_access_token(token))
        if isinstance(result, AccessClaims):
            assert not isinstance(principal, type), f"Verifier refused it: {principal}"
            assert (principal.user_id, principal.sid) == (result.sub, result.sid)
            assert principal.expires_at == result.exp
        else:
            assert principal is result, f"{principal} where the verifier raised {result}"


def _check_claims(token: str, claims: AccessClaims) -> None:
    header = json.loads(_b64(token.split(".")[0]))
    key = _KEY_SET.verifying_key(header["kid"], NOW)
    assert key is not None and header["alg"] == key.alg, "the key decides the algorithm"
    assert header["typ"].lower() in {"at+jwt", "application/at+jwt"}
    assert claims.iss == ISSUER
    raw_aud = claims.raw["aud"]
    assert raw_aud == AUDIENCE or (isinstance(raw_aud, list) and AUDIENCE in raw_aud)
    for value in (claims.sub, claims.sid, claims.client_id, claims.jti):
        assert isinstance(value, str) and value
    assert claims.raw["exp"] > NOW - LEEWAY, "an expired token was accepted"  # type: ignore[operator]
    assert claims.not_before <= NOW + LEEWAY, "a token not valid yet was accepted"


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def seeds() -> list[bytes]:
    valid = Writer().pick(_MODES, "signed_claims").pick(_KEYS, _KEYS[0]).pick(_SIGNATURES, "keep")
    valid.pick(_HEADERS, "valid")
    for _ in _CLAIMS:
        valid.pick(_VALUES, "valid")
    fractional_exp = Writer().pick(_MODES, "signed_claims").pick(_KEYS, _KEYS[1])
    fractional_exp.pick(_SIGNATURES, "keep").pick(_HEADERS, "typ_application")
    for name in _CLAIMS:
        fractional_exp.pick(_VALUES, "1800000000.5" if name == "exp" else "valid")
    payload = json.dumps({"iss": ISSUER, "aud": [AUDIENCE], "exp": 1e308}).encode()
    return [
        valid.build(),
        fractional_exp.build(),
        Writer()
        .pick(_MODES, "signed_bytes")
        .pick(_KEYS, _KEYS[2])
        .pick(_SIGNATURES, "keep")
        .raw(256, b'{"alg":"RS256","typ":"at+jwt","kid":"{kid}"}')
        .rest(payload)
        .build(),
        Writer().pick(_MODES, "text").rest_text("eyJhbGciOiJub25lIn0.e30.").build(),
    ]
