"""RFC 9068 access tokens: JWTs with ``typ: at+jwt``, signed with the issuer's key set.

keyfob reads and writes the JWS compact serialization of its RFC 9068 profile itself and
signs and verifies through PyJWT's JWA algorithm objects, for the three algorithms it
allows (RFC 7518 §3.3-3.4, RFC 8037). Both JOSE libraries were measured for this hot path
(bench/jose_compare.py, docs/dependencies.md): their full decode() costs about twice the
raw signature check, mostly in generic parsing that the profile does not need. The
Wycheproof vectors (tests/core/test_wycheproof.py) run against the functions here.

Verification refuses, in this order and before any work the token did not pay for
(spec §7):

1. anything that is not text of at most ``max_token_bytes`` in three strict base64url
   segments (``MalformedAccessToken``);
2. a header that is not a JSON object, that carries a key or a key URL (``jwk``, ``jku``,
   ``x5c``, ``x5u``) or ``crit``/``b64``, whose ``alg`` is not on the allow-list (so never
   ``none`` or ``HS*``) or whose ``typ`` is not ``at+jwt`` (``MalformedAccessToken``);
3. a ``kid`` that names no key published at ``now`` — keys are only looked up, never
   fetched — or an ``alg`` that is not that key's own (``BadSignature``);
4. a signature that does not verify (``BadSignature``);
5. claims: ``iss``, ``aud`` and the required string claims (``InvalidClaims``), then
   ``exp``, ``nbf`` and ``iat`` with a bounded leeway (``ExpiredAccessToken``).

Nothing else escapes: any input at all ends in a :class:`~keyfob.exceptions.InvalidToken`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final, NoReturn, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from ..exceptions import (
    BadSignature,
    ConfigurationError,
    ExpiredAccessToken,
    InvalidClaims,
    MalformedAccessToken,
)
from .keys import ALGORITHMS, KeyLookup, PublicKey, SigningKey, VerifyingKey

__all__ = [
    "ACCESS_TOKEN_TYP",
    "MAX_LEEWAY",
    "AccessClaims",
    "AccessTokenSigner",
    "AccessTokenVerifier",
    "VerifiedJWS",
    "sign_bytes",
    "verify_jws",
    "verify_signature",
]

#: The ``typ`` header of RFC 9068 access tokens.
ACCESS_TOKEN_TYP: Final = "at+jwt"
#: Accepted spellings of ``typ`` (RFC 9068 §4 / RFC 7515 §4.1.9), compared in lower case.
_AT_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
#: The largest clock leeway a verifier accepts: more would make ``exp`` meaningless.
MAX_LEEWAY: Final = 300.0

# Header members that would make the token choose its own key or extend the processing
# rules: keyfob only looks keys up in its own key set (spec §7), so they are refused.
_FORBIDDEN_HEADERS: Final = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64"})
# Three base64url segments (only the payload may be empty, RFC 7515 §7.1); this also keeps
# every non-ASCII character out.
_COMPACT: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]+)")
# RFC 6749 §3.3 scope-token: printable ASCII without space, '"' or '\'.
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# A final base64url character carries 4 (len % 4 == 2) or 2 (== 3) padding bits that must
# be zero; otherwise one byte string has several encodings (a malleable token text).
_B64_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CANONICAL_LAST: Final = {
    2: frozenset(_B64_ALPHABET[::16]),
    3: frozenset(_B64_ALPHABET[::4]),
}
_PADDING: Final = ("", "", "==", "=")
_URLSAFE_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python extensions, not JSON


_JSON_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_JSON_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    """Decode one segment already known to hold base64url characters only."""
    rem = len(segment) % 4
    if rem == 1 or (rem and segment[-1] not in _CANONICAL_LAST[rem]):
        raise MalformedAccessToken("the token is not canonical base64url")
    # binascii straight away: base64.urlsafe_b64decode adds a third more time per call.
    padded = (segment + _PADDING[rem]).encode("ascii").translate(_URLSAFE_TO_STANDARD)
    try:
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error as exc:  # pragma: no cover - the checks above exclude it
        raise MalformedAccessToken("the token is not base64url") from exc


def _json_object(data: bytes, part: str) -> dict[str, object]:
    try:
        value = _JSON_DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, > 4300-digit numbers
        raise MalformedAccessToken(f"the token {part} is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedAccessToken(f"the token {part} is not a JSON object")
    return value


@lru_cache(maxsize=64)
def _header(segment: str) -> Mapping[str, object]:
    # A pure function of its input, so caching it is always correct; every token one key
    # signs has the same header, which then costs a dict lookup instead of a decode.
    # Junk headers can only evict entries, and errors are never cached.
    return MappingProxyType(_json_object(_b64decode(segment), "header"))


# --- the three JWA algorithms -----------------------------------------------------------
# The JWA signature layer (RFC 7518 §3.3-3.4, RFC 8037) is PyJWT's: its algorithm objects
# turn cryptography's signatures into JWS form (R||S for ES256) and back. keyfob keeps
# only the RFC 9068 profile above it (the strict compact parser, header and claim policy),
# because PyJWT's decode() costs 2.2x the raw verification on this hot path
# (bench/jose_compare.py, docs/dependencies.md). The objects are built once.
_JWA: Final[Mapping[str, Algorithm]] = {
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "EdDSA": OKPAlgorithm(),
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
}


# ES256 signs every refresh and login and verifies every new access token, so it skips
# the algorithm object's per-call work (a new ECDSA(SHA256()) object, a generic
# DER/integer conversion): ~10% of a sign, ~5% of a verify (bench/layers.py). The JWS
# form is R‖S, each a 32-byte big-endian integer (RFC 7518 §3.4); PyJWT verifies what
# this signs in the tests, and the Wycheproof P1363 cases run against the verify.
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())


def sign_bytes(key: SigningKey, data: bytes) -> bytes:
    """``key``'s JWS signature (RFC 7518/8037 form) of ``data``."""
    private_key = key.private_key
    if key.alg == "ES256" and isinstance(private_key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private_key.sign(data, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return _JWA[key.alg].sign(data, private_key)


def verify_signature(
    alg: str, public_key: PublicKey, signing_input: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` (JWS form: R‖S for ES256) is ``alg``'s signature of the input.

    The one primitive every token verification goes through. An ``alg`` outside
    :data:`~keyfob.core.keys.ALGORITHMS`, or a key of another type, verifies nothing.
    """
    jwa = _JWA.get(alg)
    if jwa is None:
        return False
    try:
        if alg == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(signature) != 64 or not isinstance(public_key.curve, ec.SECP256R1):
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public_key.verify(der, signing_input, _ECDSA_SHA256)
            return True
        return bool(jwa.verify(signing_input, public_key, signature))
    except (InvalidSignature, InvalidKeyError, TypeError, ValueError, AttributeError):
        # A malformed signature or a mismatched key must not escape as a foreign error.
        return False


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    """A compact JWS whose header passed the policy and whose signature verified."""

    header: Mapping[str, object]
    payload: bytes
    key: VerifyingKey


def verify_jws(
    token: object,
    *,
    keys: KeyLookup,
    now: float,
    algorithms: Collection[str] = ALGORITHMS,
    max_token_bytes: int = 8192,
    typ: Collection[str] | None = None,
) -> VerifiedJWS:
    """Verify a JWS compact serialization under keyfob's header policy (steps 1-4 above).

    ``typ``, when given, is the set of accepted ``typ`` values in lower case; the claims
    are left to the caller. :class:`AccessTokenVerifier` is this plus RFC 9068 claims.
    """
    if not isinstance(token, str):
        raise MalformedAccessToken("an access token is text")
    if len(token) > max_token_bytes:
        # Before decoding anything: an oversized token costs one length check.
        raise MalformedAccessToken("the access token is too long")
    parts = _COMPACT.fullmatch(token)
    if parts is None:
        raise MalformedAccessToken("the access token is not a compact JWS")
    header_b64, payload_b64, signature_b64 = parts.groups()

    header = _header(header_b64)
    if not _FORBIDDEN_HEADERS.isdisjoint(header):
        raise MalformedAccessToken("the token header names its own key or critical extensions")
    alg = header.get("alg")
    if type(alg) is not str or alg not in algorithms or alg not in _JWA:
        raise MalformedAccessToken("the token algorithm is not allowed")
    if typ is not None:
        token_typ = header.get("typ")
        if type(token_typ) is not str or token_typ.lower() not in typ:
            raise MalformedAccessToken("the token type is not at+jwt")

    kid = header.get("kid")
    key = keys.verifying_key(kid, now) if type(kid) is str else None
    if key is None:
        raise BadSignature("no published key has the token's kid")
    if key.alg != alg:
        # The key decides the algorithm, never the token (no algorithm confusion).
        raise BadSignature("the token algorithm is not its key's algorithm")
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    if not verify_signature(alg, key.public_key, signing_input, _b64decode(signature_b64)):
        raise BadSignature("the token signature does not verify")
    return VerifiedJWS(header, _b64decode(payload_b64), key)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token."""

    sub: str
    sid: str
    client_id: str
    scope: frozenset[str]
    jti: str
    iss: str
    aud: str
    iat: int
    exp: int
    #: The whole payload, for claims keyfob does not interpret.
    raw: Mapping[str, object]


_REQUIRED_STRINGS: Final = ("sub", "sid", "client_id", "jti")


def _is_numeric_date(value: object) -> bool:
    # bool is an int subclass and inf a float: neither is a NumericDate (RFC 7519 §2).
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _bad_claims(claims: Mapping[str, object]) -> InvalidClaims:
    """Name the first required claim that is missing or has the wrong JSON type."""
    for name in _REQUIRED_STRINGS:
        value = claims.get(name)
        if type(value) is not str or not value:
            return InvalidClaims(f"the token has no valid {name!r} claim")
    if type(claims.get("scope")) is not str:
        return InvalidClaims("the token has no valid 'scope' claim")
    for name in ("exp", "iat", "nbf"):
        if (name in claims or name != "nbf") and not _is_numeric_date(claims.get(name)):
            return InvalidClaims(f"the token has no valid {name!r} claim")
    return InvalidClaims("the token's claims are invalid")  # pragma: no cover


class AccessTokenSigner:
    """Builds RFC 9068 access tokens for one issuer and audience."""

    __slots__ = ("_audience", "_headers", "_issuer", "_ttl")

    def __init__(self, *, issuer: str, audience: str, ttl: float) -> None:
        if not issuer or not audience:
            raise ConfigurationError("access tokens need an issuer and an audience")
        if not ttl > 0:
            raise ConfigurationError("the access-token lifetime must be positive")
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        # kid -> encoded header segment, built once per key.
        self._headers: dict[str, str] = {}

    def _header(self, key: SigningKey) -> str:
        segment = self._headers.get(key.kid)
        if segment is None:
            header = {"alg": key.alg, "typ": ACCESS_TOKEN_TYP, "kid": key.kid}
            segment = _b64encode(_JSON_ENCODER.encode(header).encode())
            self._headers[key.kid] = segment
        return segment

    def sign(
        self,
        key: SigningKey,
        *,
        sub: str,
        sid: str,
        client_id: str,
        scope: Iterable[str] | str,
        now: float,
        jti: str | None = None,
    ) -> str:
        """A signed access token for ``sub``'s session ``sid``, valid for ``ttl`` from now."""
        if not key.can_sign(now):
            # Publish-before-sign (spec §3 item 6): a key signs only inside its window.
            raise ConfigurationError(f"signing key {key.kid} does not sign at this time")
        scopes = scope.split() if isinstance(scope, str) else sorted(set(scope))
        scope_text = " ".join(scopes)
        if not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
            raise ValueError("a scope token is printable ASCII without spaces, quotes or '\\'")
        if not (sub and sid and client_id):
            raise ValueError("sub, sid and client_id cannot be empty")
        iat = int(now)
        claims = {
            "iss": self._issuer,
            "sub": sub,
            "aud": self._audience,
            "exp": int(now + self._ttl),
            "iat": iat,
            "jti": jti or secrets.token_urlsafe(16),
            "client_id": client_id,
            "sid": sid,
            "scope": scope_text,
        }
        signing_input = f"{self._header(key)}.{_b64encode(_JSON_ENCODER.encode(claims).encode())}"
        signature = sign_bytes(key, signing_input.encode("ascii"))
        return f"{signing_input}.{_b64encode(signature)}"


class AccessTokenVerifier:
    """Checks access tokens against a key set, an issuer and an audience, with no I/O."""

    __slots__ = ("_algorithms", "_audience", "_issuer", "_keys", "_leeway", "_max_token_bytes")

    def __init__(
        self,
        keys: KeyLookup,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ALGORITHMS,
        leeway: float = 30,
        max_token_bytes: int = 8192,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown or not algorithms:
            # Refused here, not at the first token: "none" or "HS256" is never an option.
            raise ConfigurationError(f"algorithms must be a non-empty subset of {ALGORITHMS}")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ConfigurationError(f"the leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        if max_token_bytes < 256:
            raise ConfigurationError("max_token_bytes is too small for any access token")
        if not issuer or not audience:
            raise ConfigurationError("a verifier needs an issuer and an audience")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = frozenset(algorithms)
        self._leeway = float(leeway)
        self._max_token_bytes = max_token_bytes

    def with_keys(self, keys: KeyLookup) -> AccessTokenVerifier:
        """The same policy over a new key set (after a rotation or a JWKS refresh)."""
        return AccessTokenVerifier(
            keys,
            issuer=self._issuer,
            audience=self._audience,
            algorithms=tuple(self._algorithms),
            leeway=self._leeway,
            max_token_bytes=self._max_token_bytes,
        )

    def verify(self, token: str, *, now: float) -> AccessClaims:
        """The claims of a valid token; any other input raises an ``InvalidToken``."""
        jws = verify_jws(
            token,
            keys=self._keys,
            now=now,
            algorithms=self._algorithms,
            max_token_bytes=self._max_token_bytes,
            typ=_AT_TYPES,
        )
        claims = _json_object(jws.payload, "payload")
        get = claims.get

        if get("iss") != self._issuer:
            raise InvalidClaims("the token was issued by another issuer")
        aud = get("aud")
        if aud != self._audience and not (type(aud) is list and self._audience in aud):
            raise InvalidClaims("the token is meant for another audience")
        sub, sid, client_id, jti, scope = (
            get("sub"),
            get("sid"),
            get("client_id"),
            get("jti"),
            get("scope"),
        )
        exp, iat, nbf = get("exp"), get("iat"), get("nbf")
        # One combined test on the hot path; _bad_claims says which claim failed.
        if not (
            type(sub) is str
            and sub
            and type(sid) is str
            and sid
            and type(client_id) is str
            and client_id
            and type(jti) is str
            and jti
            and type(scope) is str
            and _is_numeric_date(exp)
            and _is_numeric_date(iat)
            and (_is_numeric_date(nbf) or (nbf is None and "nbf" not in claims))
        ):
            raise _bad_claims(claims)
        # Checked just above: numbers (int or finite float), nbf possibly absent.
        exp_at, issued_at = cast(float, exp), cast(float, iat)
        not_before = issued_at if nbf is None else max(issued_at, cast(float, nbf))

        leeway = self._leeway
        if now - leeway >= exp_at:
            raise ExpiredAccessToken("the access token has expired")
        if not_before > now + leeway:
            raise ExpiredAccessToken("the access token is not valid yet")

        return AccessClaims(
            sub,
            sid,
            client_id,
            frozenset(scope.split()),
            jti,
            self._issuer,
            self._audience,
            int(issued_at),
            int(exp_at),
            claims,
        )

    def __repr__(self) -> str:
        return f"AccessTokenVerifier(issuer={self._issuer!r}, audience={self._audience!r})"
