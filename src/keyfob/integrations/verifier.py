"""What every framework integration checks access tokens with: one protocol, no framework.

A :class:`TokenVerifier` is anything with ``async verify_access_token_fresh(token) ->
Principal``: the auth server's :class:`~keyfob.SessionManager` in the same process
(which first pulls in sessions revoked by other processes), or a verifier of tokens
issued elsewhere that fetches the issuer's keys. The method is async because it may do
I/O; the integrations never ask which kind they were given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..core.models import Principal
from ..transports.bearer import bearer_token

__all__ = ["TokenVerifier", "verify_bearer"]


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
