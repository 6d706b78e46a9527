"""``private_key_jwt`` client assertions (RFC 7523 §3, RFC 7521 §4.2), checked with no I/O.

A confidential client proves who it is by signing a short JWT with a key whose public
half it registered. :func:`verify_client_assertion` checks it under the same JWS policy
as access tokens (:func:`keyfob.core.jws.verify_jws`: an algorithm allow-list, the key
named by ``kid`` and only looked up in the client's registered set, never fetched, no
``jku``/``jwk``/``x5u``/``x5c``), then the claims:

* ``iss`` and ``sub`` are both the client id;
* ``aud`` is (or contains) the token endpoint URL or the issuer;
* ``exp`` is in the future (with leeway) and at most ``max_lifetime`` ahead, so the
  ``jti`` that makes the assertion single-use need only be remembered that long;
* ``nbf`` and ``iat``, when present, are not in the future (with leeway);
* ``jti`` is present. Remembering it is the caller's (it needs a store).

Every refusal is :class:`~keyfob.exceptions.InvalidClient`.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from ..exceptions import InvalidClient, InvalidToken
from .jwk import ALGORITHMS, KeyLookup
from .jws import json_object, verify_jws

__all__ = ["CLIENT_ASSERTION_TYPE", "MAX_ASSERTION_BYTES", "AssertionId", "verify_client_assertion"]

#: The ``client_assertion_type`` of a JWT client assertion (RFC 7523 §2.2).
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The largest assertion read: a JWT signed by a 4096-bit RSA key fits with room to spare.
MAX_ASSERTION_BYTES: Final = 4096
_MAX_JTI: Final = 255


@dataclass(frozen=True, slots=True)
class AssertionId:
    """What makes an accepted assertion single-use: its ``jti`` until its ``exp``."""

    jti: str
    expires_at: float


def _numeric(value: object) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


def verify_client_assertion(
    assertion: str,
    *,
    client_id: str,
    keys: KeyLookup,
    audiences: Collection[str],
    now: float,
    leeway: float,
    max_lifetime: float,
) -> AssertionId:
    """Check a client assertion for ``client_id``; its ``jti`` and ``exp`` if it passes."""
    try:
        jws = verify_jws(
            assertion,
            keys=keys,
            now=now,
            algorithms=ALGORITHMS,
            max_token_bytes=MAX_ASSERTION_BYTES,
        )
        claims = json_object(jws.payload, "payload")
    except InvalidToken:
        raise InvalidClient("the client assertion is not signed by a key of the client") from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidClient("the client assertion's iss and sub must be the client id")
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in named):
        raise InvalidClient("the client assertion is meant for another audience")
    exp = claims.get("exp")
    if not _numeric(exp) or not isinstance(exp, int | float):
        raise InvalidClient("the client assertion has no valid exp")
    if exp <= now - leeway:
        raise InvalidClient("the client assertion has expired")
    if exp > now + max_lifetime + leeway:
        raise InvalidClient("the client assertion lives too long")
    for name in ("nbf", "iat"):
        if name not in claims:
            continue
        value = claims[name]
        if not _numeric(value) or not isinstance(value, int | float) or value > now + leeway:
            raise InvalidClient(f"the client assertion's {name} is invalid or in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
        raise InvalidClient("the client assertion has no valid jti")
    return AssertionId(jti, float(exp))
