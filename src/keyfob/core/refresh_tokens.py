"""The refresh-token text form: ``kfrt_`` + base64url(version | sid | secret | counter | mac).

A refresh token carries its session id, the session's random secret and the rotation
counter, authenticated by an HMAC-SHA256 keyed from the deployment secret (spec §3,
recommended design). Parsing checks the exact length and the MAC before anything else,
so a made-up, truncated or altered token is refused with no store access at all.

The store keeps ``SHA-256(secret)`` and the counter only, so a database dump yields no
usable token; the deployment secret alone does not either (the per-session secret is
needed too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..exceptions import ConfigurationError, MalformedToken

__all__ = [
    "PREFIX",
    "TOKEN_LENGTH",
    "ParsedRefreshToken",
    "RefreshToken",
    "RefreshTokenCodec",
    "derive_mac_key",
    "encode_sid",
    "hash_secret",
    "new_secret",
    "new_sid",
]

PREFIX = "kfrt_"
VERSION = 1
SID_BYTES = 16
SECRET_BYTES = 16
_COUNTER = struct.Struct(">Q")
MAC_BYTES = 32
_BODY_BYTES = 1 + SID_BYTES + SECRET_BYTES + _COUNTER.size
_RAW_BYTES = _BODY_BYTES + MAC_BYTES
#: Every refresh token has exactly this many characters; anything else is refused unread.
TOKEN_LENGTH = len(PREFIX) + len(base64.urlsafe_b64encode(b"\0" * _RAW_BYTES).rstrip(b"="))
_PADDING = "=" * (-(TOKEN_LENGTH - len(PREFIX)) % 4)
_MAC_INFO = b"keyfob refresh-token mac v1"


def derive_mac_key(deployment_secret: bytes) -> bytes:
    """The refresh-token MAC key: HMAC-SHA256 used as a KDF over the deployment secret.

    A separate ``info`` label per purpose keeps the MAC key and the key-encryption key
    independent even though both come from one secret.
    """
    if len(deployment_secret) < 32:
        raise ConfigurationError("the deployment secret must be at least 32 bytes")
    return hmac.digest(deployment_secret, _MAC_INFO, "sha256")


def new_sid() -> bytes:
    return secrets.token_bytes(SID_BYTES)


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def encode_sid(raw: bytes) -> str:
    """The text form of a session id used in the store, the ``sid`` claim and URLs."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_sid(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "==")


def hash_secret(secret: bytes) -> bytes:
    """What the store keeps of a session secret. The secret is 128 random bits, so a
    plain SHA-256 is enough: there is nothing to brute-force."""
    return hashlib.sha256(secret).digest()


class RefreshToken:
    """A refresh token's text that prints masked, so it is never logged by accident."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"RefreshToken('{PREFIX}…{self.value[-3:]}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RefreshToken):
            return hmac.compare_digest(self.value, other.value)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True, slots=True)
class ParsedRefreshToken:
    """A refresh token whose MAC checked out."""

    sid: str
    secret: bytes = field(repr=False)
    counter: int

    @property
    def secret_hash(self) -> bytes:
        return hash_secret(self.secret)


class RefreshTokenCodec:
    """Mints and parses refresh tokens.

    ``mac_keys`` go newest first: tokens are minted with the first and accepted under
    any, so the deployment secret can be rotated while sessions made under the old
    one live on (spec §3 item 6).
    """

    __slots__ = ("_macs",)

    def __init__(self, mac_keys: Sequence[bytes]) -> None:
        if not mac_keys:
            raise ConfigurationError("at least one refresh-token MAC key is required")
        self._macs = tuple(_PreparedHMAC(key) for key in mac_keys)

    def __repr__(self) -> str:
        return f"RefreshTokenCodec(<{len(self._macs)} key(s)>)"

    def mint(self, sid: str, secret: bytes, counter: int) -> RefreshToken:
        body = bytes((VERSION,)) + _decode_sid(sid) + secret + _COUNTER.pack(counter)
        mac = self._macs[0].digest(body)
        text = base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")
        return RefreshToken(PREFIX + text)

    def parse(self, token: str | RefreshToken) -> ParsedRefreshToken:
        """Check shape and MAC; raise :class:`MalformedToken` on anything else.

        No store access happens before this succeeds (spec §3, "forgeries cost nothing").
        """
        text = token.value if isinstance(token, RefreshToken) else token
        # The length check comes first: an oversized token is refused unread.
        if not isinstance(text, str) or len(text) != TOKEN_LENGTH or not text.startswith(PREFIX):
            raise MalformedToken("not a keyfob refresh token")
        try:
            raw = base64.urlsafe_b64decode(text[len(PREFIX) :] + _PADDING)
        except (binascii.Error, ValueError):
            raise MalformedToken("not a keyfob refresh token") from None
        # A non-canonical encoding (stray bits in the last character) is an alteration.
        if len(raw) != _RAW_BYTES or raw[0] != VERSION:
            raise MalformedToken("not a keyfob refresh token")
        body, mac = raw[:_BODY_BYTES], raw[_BODY_BYTES:]
        if not any(hmac.compare_digest(m.digest(body), mac) for m in self._macs):
            raise MalformedToken("refresh token signature is invalid")
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text[len(PREFIX) :]:
            raise MalformedToken("not a keyfob refresh token")
        sid = encode_sid(body[1 : 1 + SID_BYTES])
        secret = body[1 + SID_BYTES : 1 + SID_BYTES + SECRET_BYTES]
        (counter,) = _COUNTER.unpack_from(body, 1 + SID_BYTES + SECRET_BYTES)
        return ParsedRefreshToken(sid=sid, secret=secret, counter=counter)


class _PreparedHMAC:
    """HMAC-SHA256 (RFC 2104) under one key, with the keyed inner and outer states hashed
    once: ``digest`` then costs two copies and two short hashes, about half of
    ``hmac.digest``, which sets up OpenSSL's HMAC anew on every call (bench/layers.py).
    Tests check it against ``hmac.digest``.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
