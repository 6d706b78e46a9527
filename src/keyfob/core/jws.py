"""JWS compact serialization under keyfob's header policy (RFC 7515), signed and verified
through PyJWT's JWA algorithm objects (RFC 7518 §3.3-3.4, RFC 8037).

This is the layer below the RFC 9068 profile (:mod:`keyfob.core.access_tokens`): the
strict compact parser, the header policy (steps 1-4 of that module's list) and the
signature primitive. It is the only module that imports the JOSE library. The
Wycheproof vectors (tests/core/test_wycheproof.py) run against it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from ..exceptions import BadSignature, MalformedAccessToken, UnknownKeyId
from .jwk import ALGORITHMS, EDDSA_ALGORITHMS, KeyLookup, PublicKey, VerifyingKey
from .keys import SigningKey

__all__ = [
    "JSON_ENCODER",
    "VerifiedJWS",
    "b64url_encode",
    "json_object",
    "sign_bytes",
    "sign_compact",
    "verify_jws",
    "verify_signature",
]

# Header members that would make the token choose its own key or extend the processing
# rules: keyfob only looks keys up in its own key set (spec §7), so they are refused.
_FORBIDDEN_HEADERS: Final = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64"})
# Three base64url segments (only the payload may be empty, RFC 7515 §7.1); this also keeps
# every non-ASCII character out.
_COMPACT: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]+)")
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
JSON_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def b64url_encode(data: bytes) -> str:
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


def json_object(data: bytes, part: str) -> dict[str, object]:
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
    return MappingProxyType(json_object(_b64decode(segment), "header"))


# --- the JWA algorithms -----------------------------------------------------------------
# The JWA signature layer (RFC 7518 §3.3-3.4, RFC 8037) is PyJWT's: its algorithm objects
# turn cryptography's signatures into JWS form (R||S for ES256) and back. keyfob keeps
# only the RFC 9068 profile above it (the strict compact parser, header and claim policy),
# because PyJWT's decode() costs 2.2x the raw verification on this hot path
# (bench/jose_compare.py, docs/dependencies.md). The objects are built once.
_JWA: Final[Mapping[str, Algorithm]] = {
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "Ed25519": OKPAlgorithm(),  # RFC 9864: the same scheme under its own name
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


def sign_compact(key: SigningKey, claims: Mapping[str, object], *, typ: str) -> str:
    """A compact JWS of ``claims`` signed with ``key``, its header ``alg``, ``typ`` and
    ``kid`` (for tokens off the hot path; access tokens cache their header segment)."""
    header = {"alg": key.alg, "typ": typ, "kid": key.kid}
    signing_input = (
        b64url_encode(JSON_ENCODER.encode(header).encode())
        + "."
        + b64url_encode(JSON_ENCODER.encode(claims).encode())
    )
    return f"{signing_input}.{b64url_encode(sign_bytes(key, signing_input.encode('ascii')))}"


def verify_signature(
    alg: str, public_key: PublicKey, signing_input: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` (JWS form: R‖S for ES256) is ``alg``'s signature of the input.

    The one primitive every token verification goes through. An ``alg`` outside
    :data:`~keyfob.core.jwk.ALGORITHMS`, or a key of another type, verifies nothing.
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
    are left to the caller. :class:`~keyfob.core.access_tokens.AccessTokenVerifier` is this plus
    RFC 9068 claims.
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
            raise MalformedAccessToken("the token type (typ) is not one accepted here")

    kid = header.get("kid")
    key = keys.verifying_key(kid, now) if type(kid) is str else None
    if key is None:
        raise UnknownKeyId("no published key has the token's kid")
    if key.alg != alg and not (alg in EDDSA_ALGORITHMS and key.alg in EDDSA_ALGORITHMS):
        # The key decides the algorithm, never the token (no algorithm confusion). Ed25519
        # and EdDSA name one scheme on one key type (RFC 9864 §2.2), so either verifies.
        raise BadSignature("the token algorithm is not its key's algorithm")
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    if not verify_signature(alg, key.public_key, signing_input, _b64decode(signature_b64)):
        raise BadSignature("the token signature does not verify")
    return VerifiedJWS(header, _b64decode(payload_b64), key)
