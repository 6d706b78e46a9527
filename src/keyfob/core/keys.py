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

Services that only verify build a :class:`~keyfob.core.jwk.PublicKeySet` from the
issuer's JWKS document; :class:`KeySet` and it both answer
:class:`~keyfob.core.jwk.KeyLookup`, which is all the token verifier needs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..exceptions import ConfigurationError
from .jwk import (
    ALGORITHMS,
    EDDSA_ALGORITHMS,
    PrivateKey,
    PublicKey,
    VerifyingKey,
    canonical_json,
    check_key,
    public_jwk,
)

__all__ = [
    "KeyRecord",
    "KeySet",
    "RotationPlan",
    "SigningKey",
    "derive_kek",
    "generate_key",
    "load_key",
    "plan_rotation",
    "purge_expired",
]

#: RSA keys keyfob generates. 2048 bits is the floor it accepts anywhere (NIST SP 800-57);
#: a signing key lives for one rotation period, so the floor is enough.
RSA_KEY_BITS = 2048
_KEK_INFO = b"keyfob signing-key encryption v1"
_KEK_BYTES = 32
_NONCE_BYTES = 12


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
class SigningKey:
    """A :class:`KeyRecord` with its private key decrypted and prepared once."""

    record: KeyRecord
    private_key: PrivateKey = field(repr=False)
    public_key: PublicKey = field(repr=False)

    def __post_init__(self) -> None:
        check_key(self.record.alg, self.private_key)  # the signer trusts alg and key to match

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
    elif alg in EDDSA_ALGORITHMS:
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
        public_jwk=canonical_json(jwk),
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
    check_key(record.alg, loaded)
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


class KeySet:
    """The issuer's keys, immutable; answers which key signs and which keys are published."""

    __slots__ = ("_by_alg", "_by_kid", "_jwks", "_newest_first", "_verifying")

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
        # Each algorithm's keys, newest first: access tokens and id tokens may be signed
        # with different algorithms, and each signature looks only at its own keys.
        by_alg: dict[str, list[SigningKey]] = {}
        for key in self._newest_first:
            by_alg.setdefault(key.alg, []).append(key)
        self._by_alg = {alg: tuple(keys_of) for alg, keys_of in by_alg.items()}
        self._verifying = {kid: key.verifying_key() for kid, key in by_kid.items()}
        self._jwks = {kid: json.loads(key.record.public_jwk) for kid, key in by_kid.items()}

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, newest first."""
        return self._newest_first

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms of the keys in the set."""
        return frozenset(self._by_alg)

    def signing_key(self, now: float, alg: str | None = None) -> SigningKey:
        """The newest key (of algorithm ``alg``, when given) that can sign at ``now``."""
        for key in self._newest_first if alg is None else self._by_alg.get(alg, ()):
            if key.can_sign(now):
                return key
        what = "signing key" if alg is None else f"{alg} signing key"
        raise ConfigurationError(f"no {what} is active; run `keyfob keys rotate`")

    def needs_key(self, now: float, alg: str | None = None) -> bool:
        """True when no key (of algorithm ``alg``, when given) can sign at ``now``: first
        boot, every key retired, or an algorithm newly configured."""
        keys = self._newest_first if alg is None else self._by_alg.get(alg, ())
        return not any(key.can_sign(now) for key in keys)

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
    """What a rotation writes: one new key per algorithm, and the updated records of the
    keys it retires."""

    new_keys: tuple[SigningKey, ...]
    retire: list[KeyRecord]

    @property
    def new_key(self) -> SigningKey:
        """The new key of the first algorithm planned (the access tokens')."""
        return self.new_keys[0]


def plan_rotation(
    current: KeySet,
    *,
    algs: Sequence[str],
    now: float,
    kek: bytes,
    publish_delay: float,
    access_ttl: float,
    leeway: float,
    only: Collection[str] | None = None,
) -> RotationPlan:
    """Plan a rotation without downtime (spec §3 item 6).

    ``algs`` are the algorithms the issuer signs with (access tokens first, then id
    tokens if theirs differs); ``only``, when given, the ones of them that get a new key
    (the others' keys are left as they are). Each new key is published now and signs from
    ``now + publish_delay``, once every JWKS cache has had time to fetch it. If no key of
    its algorithm can sign now (first boot, all keys retired, or an algorithm newly
    configured) there is nothing to wait for and no cache can hold a stale key for it: it
    signs at once. Every key of that algorithm still signing (or scheduled to) at that
    moment is retired then; a key of an algorithm no longer in ``algs`` stops signing now.
    A retired key stays published until ``retired_at + access_ttl + leeway``, when the
    last token it signed has expired.
    """
    if min(publish_delay, access_ttl, leeway) < 0:
        raise ValueError("publish_delay, access_ttl and leeway cannot be negative")
    configured = tuple(dict.fromkeys(algs))
    renewed = configured if only is None else tuple(a for a in configured if a in only)
    if not renewed:
        raise ValueError("a rotation makes at least one key")
    # When each algorithm's new key starts signing, and so when its old keys stop.
    switch_at: dict[str, float] = {}
    new_keys = []
    for alg in renewed:
        switch_at[alg] = now if current.needs_key(now, alg) else now + publish_delay
        new_keys.append(generate_key(alg, now=now, activates_at=switch_at[alg], kek=kek))
    retire = []
    for key in current.keys:
        if key.alg in switch_at:
            retired_at = switch_at[key.alg]
        elif key.alg not in configured:
            retired_at = now
        else:
            continue
        if key.record.retired_at is None or key.record.retired_at > retired_at:
            retire.append(
                replace(
                    key.record, retired_at=retired_at, expires_at=retired_at + access_ttl + leeway
                )
            )
    return RotationPlan(new_keys=tuple(new_keys), retire=retire)


def purge_expired(records: Sequence[KeyRecord], now: float) -> list[str]:
    """The kids of keys whose every token has expired: they can be deleted."""
    return [r.kid for r in records if r.expires_at is not None and r.expires_at <= now]
