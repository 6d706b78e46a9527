"""Signing keys: generation, encryption at rest, ``kid``, publication and rotation.

One key's life (spec §3 item 6), all times in unix seconds and passed in::

    created_at ──► activates_at ──────────► retired_at ──────────► expires_at
    │ published in the JWKS ─────────────────────────────────────────┤ purged
                 │ signs new tokens ───────┤ verifies only (its tokens are still live)

A new key is published ``publish_delay`` before it signs, so every JWKS cache has it
before the first token it signed arrives; a retired key stays published for
``access_ttl + leeway`` after it stopped signing, so the last token it signed can still
be verified until that token has expired.

The store keeps :class:`KeyRecord` rows only: the private key is encrypted with
AES-256-GCM under a key-encryption key derived from the deployment secret, so a database
dump holds no private key in clear (spec §3, "nothing usable at rest").

Services that only verify build a :class:`PublicKeySet` from the issuer's JWKS document;
:class:`KeySet` and :class:`PublicKeySet` both answer :class:`KeyLookup`, which is all the
token verifier needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..exceptions import ConfigurationError

__all__ = [
    "ALGORITHMS",
    "KeyLookup",
    "KeyRecord",
    "KeySet",
    "PrivateKey",
    "PublicKey",
    "PublicKeySet",
    "RotationPlan",
    "SigningKey",
    "VerifyingKey",
    "derive_kek",
    "generate_key",
    "jwk_thumbprint",
    "load_key",
    "plan_rotation",
    "public_jwk",
    "purge_expired",
    "verifying_key_from_jwk",
]

#: The signature algorithms keyfob signs and verifies with; nothing else is ever accepted.
ALGORITHMS = ("ES256", "EdDSA", "RS256")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

#: RSA keys keyfob generates. 2048 bits is the floor it accepts anywhere (NIST SP 800-57);
#: a signing key lives for one rotation period, so the floor is enough.
RSA_KEY_BITS = 2048
_MIN_RSA_BITS = 2048
_KEK_INFO = b"keyfob signing-key encryption v1"
_KEK_BYTES = 32
_NONCE_BYTES = 12
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


def _canonical_json(obj: Mapping[str, object]) -> str:
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
    digest = hashlib.sha256(_canonical_json(_required_members(public_key)).encode()).digest()
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


def _check_key(alg: str, key: PrivateKey | PublicKey) -> None:
    """Refuse a key that does not belong to ``alg`` or is too weak to trust."""
    if alg == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or (
            not isinstance(key.curve, ec.SECP256R1)
        ):
            raise ConfigurationError("an ES256 key must be an EC P-256 key")
    elif alg == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
            raise ConfigurationError("an EdDSA key must be an Ed25519 key")
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


# --- encryption at rest -----------------------------------------------------------------


def derive_kek(deployment_secret: bytes) -> bytes:
    """The signing-key encryption key: HKDF-SHA256 over the deployment secret.

    Its own ``info`` label keeps it independent of the refresh-token MAC key that comes
    from the same secret.
    """
    if len(deployment_secret) < 32:
        raise ConfigurationError("the deployment secret must be at least 32 bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=_KEK_BYTES, salt=None, info=_KEK_INFO)
    return hkdf.derive(deployment_secret)


def _aad(kid: str, alg: str) -> bytes:
    # Binding kid and alg means a ciphertext moved to another row, or a row whose alg was
    # edited, fails to decrypt instead of loading under the wrong identity.
    return b"keyfob signing key v1\x00" + kid.encode() + b"\x00" + alg.encode()


def _aead(kek: bytes) -> AESGCM:
    if len(kek) != _KEK_BYTES:
        raise ConfigurationError("the key-encryption key must be 32 bytes (see derive_kek)")
    return AESGCM(kek)


# --- records and keys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A signing key as the store keeps it; nothing in it is usable in clear."""

    kid: str
    alg: str
    #: JSON text of the public JWK (with ``kid``, ``alg`` and ``use: "sig"``).
    public_jwk: str = field(repr=False)
    #: AES-256-GCM of the PKCS#8 DER private key: nonce ‖ ciphertext ‖ tag; kid and alg
    #: are the associated data.
    private_encrypted: bytes = field(repr=False)
    created_at: float
    #: Signs nothing before this; published from ``created_at``.
    activates_at: float
    #: Stops signing at this time.
    retired_at: float | None = None
    #: Unpublished (and purged) from this time: ``retired_at + access_ttl + leeway``.
    expires_at: float | None = None

    def can_sign(self, now: float) -> bool:
        """Whether the key signs tokens at ``now``."""
        return self.activates_at <= now and (self.retired_at is None or now < self.retired_at)

    def is_published(self, now: float) -> bool:
        """Whether the key is in the JWKS, and so verifies tokens, at ``now``."""
        return self.created_at <= now and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A public key that verifies tokens of one algorithm, from our key set or a JWKS."""

    kid: str
    alg: str
    public_key: PublicKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_key(self.alg, self.public_key)  # the verifier trusts alg and key to match


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A :class:`KeyRecord` with its private key decrypted and prepared once."""

    record: KeyRecord
    private_key: PrivateKey = field(repr=False)
    public_key: PublicKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_key(self.record.alg, self.private_key)  # the signer trusts alg and key to match

    @property
    def kid(self) -> str:
        return self.record.kid

    @property
    def alg(self) -> str:
        return self.record.alg

    def can_sign(self, now: float) -> bool:
        """Whether the key signs tokens at ``now``."""
        return self.record.can_sign(now)

    def verifying_key(self) -> VerifyingKey:
        """The public half, as the verifier uses it."""
        return VerifyingKey(self.record.kid, self.record.alg, self.public_key)


def generate_key(alg: str, *, now: float, activates_at: float, kek: bytes) -> SigningKey:
    """A fresh key for ``alg``, published from ``now``, signing from ``activates_at``."""
    if activates_at < now:
        raise ValueError("a key cannot sign before it is published (activates_at < now)")
    aead = _aead(kek)
    private_key: PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    else:
        raise ConfigurationError(f"unsupported signing algorithm {alg!r}; use one of {ALGORITHMS}")
    public_key = private_key.public_key()
    jwk = public_jwk(public_key, alg)
    kid = jwk["kid"]
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = secrets.token_bytes(_NONCE_BYTES)
    record = KeyRecord(
        kid=kid,
        alg=alg,
        public_jwk=_canonical_json(jwk),
        private_encrypted=nonce + aead.encrypt(nonce, der, _aad(kid, alg)),
        created_at=now,
        activates_at=activates_at,
    )
    return SigningKey(record, private_key, public_key)


def load_key(record: KeyRecord, *, kek: bytes) -> SigningKey:
    """Decrypt and check a stored key; a wrong KEK or any tampering is a ConfigurationError."""
    if record.alg not in ALGORITHMS:
        raise ConfigurationError(f"signing key {record.kid!r} has unsupported alg {record.alg!r}")
    aead = _aead(kek)
    blob = record.private_encrypted
    try:
        der = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(record.kid, record.alg))
    except (InvalidTag, ValueError) as exc:
        raise ConfigurationError(
            f"cannot decrypt signing key {record.kid!r}: the deployment secret differs from "
            "the one it was stored under, or the record was altered"
        ) from exc
    try:
        loaded = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"signing key {record.kid!r} is not a private key") from exc
    if not isinstance(
        loaded, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise ConfigurationError(f"signing key {record.kid!r} has an unsupported key type")
    _check_key(record.alg, loaded)
    public_key = loaded.public_key()
    # The public half is stored in clear and served as the JWKS: it must be this key's.
    expected = public_jwk(public_key, record.alg)
    try:
        stored = json.loads(record.public_jwk)
    except ValueError:
        stored = None
    if expected["kid"] != record.kid or stored != expected:
        raise ConfigurationError(f"signing key {record.kid!r} does not match its public JWK")
    return SigningKey(record, loaded, public_key)


# --- key sets ---------------------------------------------------------------------------


class KeyLookup(Protocol):
    """What a token verifier needs: the key a ``kid`` names, if it verifies at ``now``."""

    def verifying_key(self, kid: str, now: float) -> VerifyingKey | None: ...


class KeySet:
    """The issuer's keys, immutable; answers which key signs and which keys are published."""

    __slots__ = ("_by_kid", "_jwks", "_newest_first", "_verifying")

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        by_kid: dict[str, SigningKey] = {}
        for key in keys:
            if key.kid in by_kid:
                raise ConfigurationError(f"two signing keys share the kid {key.kid!r}")
            by_kid[key.kid] = key
        self._by_kid = by_kid
        # Newest = latest activation; ties broken by creation so the order is total.
        self._newest_first = tuple(
            sorted(keys, key=lambda k: (k.record.activates_at, k.record.created_at), reverse=True)
        )
        self._verifying = {kid: key.verifying_key() for kid, key in by_kid.items()}
        self._jwks = {kid: json.loads(key.record.public_jwk) for kid, key in by_kid.items()}

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, newest first."""
        return self._newest_first

    def signing_key(self, now: float) -> SigningKey:
        """The newest key that can sign at ``now``."""
        for key in self._newest_first:
            if key.can_sign(now):
                return key
        raise ConfigurationError("no signing key is active; run `keyfob keys rotate`")

    def needs_key(self, now: float) -> bool:
        """True when no key can sign at ``now`` (first boot, or every key retired)."""
        return not any(key.can_sign(now) for key in self._newest_first)

    def get(self, kid: str) -> SigningKey | None:
        """The key with this ``kid``, published or not."""
        return self._by_kid.get(kid)

    def verifying_key(self, kid: str, now: float) -> VerifyingKey | None:
        """The key with this ``kid`` if it is published at ``now`` (so its tokens verify)."""
        key = self._by_kid.get(kid)
        if key is None or not key.record.is_published(now):
            return None
        return self._verifying[kid]

    def published(self, now: float) -> list[SigningKey]:
        """The keys in the JWKS at ``now``: created, and not past their expiry."""
        return [key for key in self._newest_first if key.record.is_published(now)]

    def jwks(self, now: float) -> dict[str, object]:
        """The RFC 7517 JWK Set to serve at ``/.well-known/jwks.json``."""
        return {"keys": [dict(self._jwks[key.kid]) for key in self.published(now)]}

    def __len__(self) -> int:
        return len(self._by_kid)

    def __repr__(self) -> str:
        return f"KeySet(kids={[key.kid for key in self._newest_first]!r})"


@dataclass(frozen=True)
class RotationPlan:
    """What a rotation writes: one new key, and the updated records of keys it retires."""

    new_key: SigningKey
    retire: list[KeyRecord]


def plan_rotation(
    current: KeySet,
    *,
    alg: str,
    now: float,
    kek: bytes,
    publish_delay: float,
    access_ttl: float,
    leeway: float,
) -> RotationPlan:
    """Plan a rotation without downtime (spec §3 item 6).

    The new key is published now and signs from ``now + publish_delay``, once every
    JWKS cache has had time to fetch it. If nothing can sign now (first boot, or all keys
    retired) there is nothing to wait for and no cache can hold a stale set: the new key
    signs at once. Every key still signing (or scheduled to) at that moment is retired
    then and stays published until ``retired_at + access_ttl + leeway``, when the last
    token it signed has expired.
    """
    if min(publish_delay, access_ttl, leeway) < 0:
        raise ValueError("publish_delay, access_ttl and leeway cannot be negative")
    activates_at = now if current.needs_key(now) else now + publish_delay
    new_key = generate_key(alg, now=now, activates_at=activates_at, kek=kek)
    retire = [
        replace(
            key.record,
            retired_at=activates_at,
            expires_at=activates_at + access_ttl + leeway,
        )
        for key in current.keys
        if key.record.retired_at is None or key.record.retired_at > activates_at
    ]
    return RotationPlan(new_key=new_key, retire=retire)


def purge_expired(records: Sequence[KeyRecord], now: float) -> list[str]:
    """The kids of keys whose every token has expired: they can be deleted."""
    return [r.kid for r in records if r.expires_at is not None and r.expires_at <= now]


# --- verifying from a published JWKS ----------------------------------------------------


def _infer_alg(kty: object, crv: object) -> str:
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
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
        elif alg == "EdDSA":
            x = _unb64(jwk.get("x"), "x")
            if kty != "OKP" or crv != "Ed25519" or len(x) != 32:
                raise ConfigurationError("an EdDSA JWK must be an OKP Ed25519 key")
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(x)
        else:
            if kty != "RSA":
                raise ConfigurationError("an RS256 JWK must be an RSA key")
            n = int.from_bytes(_unb64(jwk.get("n"), "n"), "big")
            e = int.from_bytes(_unb64(jwk.get("e"), "e"), "big")
            public_key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:  # off-curve point, e < 3 or even, and the like
        raise ConfigurationError(f"the JWK is not a valid {alg} public key") from exc
    _check_key(alg, public_key)
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
