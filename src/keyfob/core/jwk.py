"""Public keys as JWKs (RFC 7517/7518/8037/7638): export, ``kid`` thumbprints, the key-type
policy, and import from an issuer's JWKS document for services that only verify.

Everything here is public-key material; private keys and their encryption at rest live in
:mod:`keyfob.core.keys`. :class:`~keyfob.core.keys.KeySet` and :class:`PublicKeySet` both
answer :class:`KeyLookup`, which is all the token verifier needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Literal, Protocol, get_args

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..exceptions import ConfigurationError

__all__ = [
    "ALGORITHMS",
    "EDDSA_ALGORITHMS",
    "KeyLookup",
    "PrivateKey",
    "PublicKey",
    "PublicKeySet",
    "SigningAlg",
    "VerifyingKey",
    "canonical_json",
    "check_key",
    "jwk_thumbprint",
    "public_jwk",
    "verifying_key_from_jwk",
]

#: The signature algorithms keyfob signs and verifies with; nothing else is ever accepted.
#: The one place they are written: settings, the CLI's choices and the docs read them here.
#: ``Ed25519`` is RFC 9864's fully-specified name of what ``EdDSA`` names with an Ed25519
#: key (``EdDSA`` is deprecated there, yet the only name PyJWT 2.15 verifies).
SigningAlg = Literal["ES256", "Ed25519", "EdDSA", "RS256"]
ALGORITHMS: tuple[SigningAlg, ...] = get_args(SigningAlg)
#: The two names of Ed25519 signatures: one key type, one signature scheme, so a key
#: published under either name verifies a token naming the other (no confusion is
#: possible: the key still decides the scheme).
EDDSA_ALGORITHMS: frozenset[str] = frozenset({"Ed25519", "EdDSA"})

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

#: The smallest RSA key keyfob accepts anywhere (NIST SP 800-57).
_MIN_RSA_BITS = 2048
#: JWK members that only a private key has; a public key set carrying one is a leak.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")

# --- small encoding helpers -------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    """Strict base64url (RFC 7515 §2): no padding, no stray characters, canonical bits."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise ConfigurationError(f"JWK member {what!r} is not base64url text")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"JWK member {what!r} is not base64url text") from exc
    if _b64(data) != text:
        raise ConfigurationError(f"JWK member {what!r} is not canonical base64url")
    return data


def _uint(value: int) -> str:
    return _b64(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def canonical_json(obj: Mapping[str, object]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# --- JWK export and kid -----------------------------------------------------------------


def _required_members(public_key: PublicKey) -> dict[str, str]:
    """The members RFC 7638 §3.2 hashes for the thumbprint (and the core of the JWK)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}  # RFC 8037 §2
    rsa_numbers = public_key.public_numbers()
    return {"e": _uint(rsa_numbers.e), "kty": "RSA", "n": _uint(rsa_numbers.n)}


def jwk_thumbprint(public_key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint: base64url(SHA-256(required members, sorted, no spaces))."""
    digest = hashlib.sha256(canonical_json(_required_members(public_key)).encode()).digest()
    return _b64(digest)


def public_jwk(public_key: PublicKey, alg: str) -> dict[str, str]:
    """The public JWK keyfob publishes: key members plus ``kid``, ``alg`` and ``use``."""
    return {
        **_required_members(public_key),
        "kid": jwk_thumbprint(public_key),
        "alg": alg,
        "use": "sig",
    }


# --- key type policy --------------------------------------------------------------------


@cache
def _roca_fingerprints() -> tuple[tuple[int, frozenset[int]], ...]:
    """For small primes p, the residues of the subgroup that 65537 generates mod p.

    Keys from the vulnerable Infineon library (ROCA, CVE-2017-15361) have ``n mod p`` in
    that subgroup for every one of these primes; a sound key almost never does.
    """
    primes = [p for p in range(3, 168) if all(p % d for d in range(2, int(p**0.5) + 1))]
    prints = []
    for p in primes:
        residues, x = {1}, 65537 % p
        while x not in residues:
            residues.add(x)
            x = x * 65537 % p
        prints.append((p, frozenset(residues)))
    return tuple(prints)


def _has_roca_fingerprint(n: int) -> bool:
    return all(n % p in residues for p, residues in _roca_fingerprints())


def check_key(alg: str, key: PrivateKey | PublicKey) -> None:
    """Refuse a key that does not belong to ``alg`` or is too weak to trust."""
    if alg == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or (
            not isinstance(key.curve, ec.SECP256R1)
        ):
            raise ConfigurationError("an ES256 key must be an EC P-256 key")
    elif alg in EDDSA_ALGORITHMS:
        if not isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
            raise ConfigurationError(f"an {alg} key must be an Ed25519 key")
    elif alg == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            raise ConfigurationError("an RS256 key must be an RSA key")
        public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
        if public.key_size < _MIN_RSA_BITS:
            raise ConfigurationError(f"RSA keys must have at least {_MIN_RSA_BITS} bits")
        if _has_roca_fingerprint(public.public_numbers().n):
            raise ConfigurationError("the RSA key has the ROCA weakness (CVE-2017-15361)")
    else:
        raise ConfigurationError(f"unsupported signing algorithm {alg!r}; use one of {ALGORITHMS}")


# --- verifying keys ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A public key that verifies tokens of one algorithm, from our key set or a JWKS."""

    kid: str
    alg: str
    public_key: PublicKey = field(repr=False)

    def __post_init__(self) -> None:
        check_key(self.alg, self.public_key)  # the verifier trusts alg and key to match


class KeyLookup(Protocol):
    """What a token verifier needs: the key a ``kid`` names, if it verifies at ``now``."""

    def verifying_key(self, kid: str, now: float) -> VerifyingKey | None: ...


# --- verifying from a published JWKS ----------------------------------------------------


def _infer_alg(kty: object, crv: object) -> str:
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "Ed25519"  # RFC 9864's name; tokens naming EdDSA verify with it too
    if kty == "RSA":
        return "RS256"
    raise ConfigurationError(f"JWK key type {kty!r} is not one keyfob verifies with")


def verifying_key_from_jwk(jwk: Mapping[str, object]) -> VerifyingKey:
    """Import one public signature-verification JWK (RFC 7517/7518/8037), strictly.

    Refused with ConfigurationError: symmetric keys and any private member, keys meant
    for encryption (``use``/``key_ops``), an ``alg`` outside :data:`ALGORITHMS` or that
    does not fit the key, points off the curve, and weak RSA keys (< 2048 bits, e < 3,
    ROCA). A JWK without ``kid`` gets its RFC 7638 thumbprint.
    """
    if not isinstance(jwk, Mapping):
        raise ConfigurationError("a JWK must be a JSON object")
    leaked = _PRIVATE_JWK_MEMBERS.intersection(jwk)
    if leaked:
        raise ConfigurationError("a public JWK must not carry private or symmetric key material")
    if "use" in jwk and jwk["use"] != "sig":
        raise ConfigurationError("the JWK is not for signatures (use)")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise ConfigurationError("the JWK is not for verifying signatures (key_ops)")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    alg = jwk["alg"] if "alg" in jwk else _infer_alg(kty, crv)
    if alg not in ALGORITHMS:
        raise ConfigurationError(f"JWK alg {alg!r} is not one of {ALGORITHMS}")
    assert isinstance(alg, str)
    public_key: PublicKey
    try:
        if alg == "ES256":
            x, y = _unb64(jwk.get("x"), "x"), _unb64(jwk.get("y"), "y")
            if kty != "EC" or crv != "P-256" or len(x) != 32 or len(y) != 32:
                raise ConfigurationError("an ES256 JWK must be an EC P-256 key")
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b"\x04" + x + y
            )
        elif alg in EDDSA_ALGORITHMS:
            x = _unb64(jwk.get("x"), "x")
            if kty != "OKP" or crv != "Ed25519" or len(x) != 32:
                raise ConfigurationError(f"an {alg} JWK must be an OKP Ed25519 key")
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(x)
        else:
            if kty != "RSA":
                raise ConfigurationError("an RS256 JWK must be an RSA key")
            n = int.from_bytes(_unb64(jwk.get("n"), "n"), "big")
            e = int.from_bytes(_unb64(jwk.get("e"), "e"), "big")
            public_key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:  # off-curve point, e < 3 or even, and the like
        raise ConfigurationError(f"the JWK is not a valid {alg} public key") from exc
    check_key(alg, public_key)
    kid = jwk.get("kid", jwk_thumbprint(public_key))
    if not isinstance(kid, str) or not kid:
        raise ConfigurationError("a JWK kid must be a non-empty string")
    return VerifyingKey(kid, alg, public_key)


class PublicKeySet:
    """Keys from an issuer's JWKS document, for services that only verify tokens.

    A JWKS carries no timestamps: the issuer removes a key once its tokens have expired,
    so every key here verifies until the set is replaced by a fresher fetch.
    """

    __slots__ = ("_by_kid",)

    def __init__(self, keys: Sequence[VerifyingKey]) -> None:
        by_kid: dict[str, VerifyingKey] = {}
        for key in keys:
            if key.kid in by_kid:
                # Two keys under one kid make "which key verifies" ambiguous: refuse.
                raise ConfigurationError(f"two keys in the key set share the kid {key.kid!r}")
            by_kid[key.kid] = key
        self._by_kid = by_kid

    @classmethod
    def from_jwks(cls, document: Mapping[str, object]) -> PublicKeySet:
        """Import a JWK Set; any key keyfob cannot trust refuses the whole set."""
        keys = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(keys, list):
            raise ConfigurationError('a JWK Set must be a JSON object with a "keys" list')
        return cls([verifying_key_from_jwk(jwk) for jwk in keys])

    def verifying_key(self, kid: str, now: float) -> VerifyingKey | None:
        return self._by_kid.get(kid)

    def __len__(self) -> int:
        return len(self._by_kid)

    def __repr__(self) -> str:
        return f"PublicKeySet(kids={list(self._by_kid)!r})"
