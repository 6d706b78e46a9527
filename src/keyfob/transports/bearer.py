"""``Authorization: Bearer`` in, ``WWW-Authenticate: Bearer`` out (RFC 6750).

A request without credentials gets a challenge with no ``error`` attribute (RFC 6750
§3.1: "the resource server SHOULD NOT include an error code"); a request whose token is
refused gets ``error="invalid_token"`` and a description, and one whose token lacks a
scope gets ``error="insufficient_scope"`` and the ``scope`` it needs. Which challenge an
error gets is decided on its class (:meth:`keyfob.exceptions.KeyfobError.challenge`).

"Bearer header → principal" is :func:`verify_bearer`, over a :class:`TokenVerifier`: the
auth server's own routes and every framework integration go through it. A verifier is
anything with ``async verify_access_token_fresh(token) -> Principal``: the auth server's
:class:`~keyfob.SessionManager` (which first pulls in sessions revoked by other
processes), a store-free :class:`~keyfob.verifier.Verifier`, or a verifier of tokens
issued elsewhere. The method is async because it may do I/O; callers never ask which
kind they were given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..core.models import Principal
from ..exceptions import MalformedAccessToken, MissingCredentials

__all__ = [
    "MAX_AUTHORIZATION_LENGTH",
    "TokenVerifier",
    "bearer_token",
    "verify_bearer",
    "www_authenticate",
]

#: Longer ``Authorization`` values are refused unread (an access token is ~600 bytes).
MAX_AUTHORIZATION_LENGTH = 8192

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")
# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
_NOT_QUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# RFC 6749 §3.3: a scope token is %x21 / %x23-5B / %x5D-7E.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def bearer_token(authorization: Sequence[str]) -> str:
    """The access token from the request's ``Authorization`` header values.

    Raises :class:`MissingCredentials` when there is none (or another scheme), and
    :class:`~keyfob.exceptions.MalformedAccessToken` for a malformed or repeated header.
    """
    if not authorization:
        raise MissingCredentials("an access token is required: Authorization: Bearer <token>")
    if len(authorization) > 1:
        raise MalformedAccessToken("more than one Authorization header")
    value = authorization[0]
    if len(value) > MAX_AUTHORIZATION_LENGTH:
        raise MalformedAccessToken("the Authorization header is too long")
    value = value.strip()
    match = _BEARER.fullmatch(value)
    if match is not None:
        return match.group(1)
    scheme = value.partition(" ")[0]
    if scheme.lower() == "bearer":
        raise MalformedAccessToken("the bearer token is malformed")
    raise MissingCredentials("an access token is required: Authorization: Bearer <token>")


def www_authenticate(
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    realm: str = "keyfob",
) -> str:
    """The ``WWW-Authenticate`` value of a 401 or 403 from a protected route.

    ``scope`` lists the scopes needed, space-separated; those that are not RFC 6749
    scope tokens are left out rather than quoted.
    """
    parts = [f'realm="{_quotable(realm)}"']
    if error:
        parts.append(f'error="{_quotable(error)}"')
        if description:
            parts.append(f'error_description="{_quotable(description)}"')
    scopes = " ".join(s for s in (scope or "").split(" ") if _SCOPE_TOKEN.fullmatch(s))
    if scopes:
        parts.append(f'scope="{scopes}"')
    return "Bearer " + ", ".join(parts)


def _quotable(text: str) -> str:
    return _NOT_QUOTABLE.sub("?", text)


@runtime_checkable
class TokenVerifier(Protocol):
    """What checks an access token: a SessionManager, or a JWKS-backed verifier."""

    async def verify_access_token_fresh(self, token: str) -> Principal:
        """The token's principal; raises an :class:`~keyfob.exceptions.InvalidToken`
        subclass, or ``StoreUnavailable`` when what it needs cannot be reached."""


async def verify_bearer(verifier: TokenVerifier, authorization: Sequence[str]) -> Principal:
    """The principal of a request's ``Authorization`` header values.

    Raises :class:`~keyfob.exceptions.InvalidToken` (``MissingCredentials`` when there is
    no bearer token) and, for a verifier whose store is down, ``StoreUnavailable``.
    """
    # A manager counts revocations made by other workers at once (spec §3 item 4).
    return await verifier.verify_access_token_fresh(bearer_token(authorization))
