"""Endpoint signing secrets: made, shown once as ``whsec_…``, sealed at rest.

A receiver verifies with the same secret keyfob signs with (HMAC-SHA256), so keyfob
must be able to read it back: it cannot keep only a hash, as it does for refresh-token
secrets. It keeps the secret sealed instead, with AES-256-GCM under a key that HKDF
derives from the deployment secret with its own label (like the signing keys,
:func:`keyfob.core.keys.derive_kek`), and the endpoint's id as associated data, so a
sealed secret copied onto another endpoint's row does not open. A database dump holds no
usable webhook secret (spec §3, "nothing usable at rest").
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..exceptions import ConfigurationError

__all__ = [
    "SECRET_PREFIX",
    "derive_sealing_key",
    "new_secret",
    "seal",
    "secret_text",
    "unseal",
]

#: The Standard Webhooks prefix of a signing secret.
SECRET_PREFIX: Final = "whsec_"
#: 32 random bytes: inside the 24 to 64 that the Standard Webhooks specification asks for.
_SECRET_BYTES: Final = 32
_INFO: Final = b"keyfob webhook-secret encryption v1"
_NONCE_BYTES: Final = 12


def derive_sealing_key(deployment_secret: bytes) -> bytes:
    """The key that seals webhook secrets: HKDF-SHA256 over the deployment secret."""
    if len(deployment_secret) < 32:
        raise ConfigurationError("the deployment secret must be at least 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        deployment_secret
    )


def new_secret() -> bytes:
    return secrets.token_bytes(_SECRET_BYTES)


def secret_text(secret: bytes) -> str:
    """The secret as a receiver configures it: ``whsec_`` + base64."""
    return SECRET_PREFIX + base64.b64encode(secret).decode("ascii")


def _aad(endpoint_id: str) -> bytes:
    return b"keyfob webhook secret v1\x00" + endpoint_id.encode()


def seal(key: bytes, endpoint_id: str, secret: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, secret, _aad(endpoint_id))


def unseal(keys: Sequence[bytes], endpoint_id: str, sealed: bytes) -> bytes:
    """The secret, opened with the first of ``keys`` (newest first) that opens it."""
    for key in keys:
        try:
            return AESGCM(key).decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(endpoint_id)
            )
        except (InvalidTag, ValueError):
            continue
    raise ConfigurationError(
        f"cannot open the signing secret of webhook endpoint {endpoint_id}: it was sealed "
        "under another deployment secret, or the row was altered"
    )
