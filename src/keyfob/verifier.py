"""Access-token verification with no store: the part that other services need.

A :class:`Verifier` checks an RFC 9068 access token against a key set, an issuer and an
audience (:class:`~keyfob.core.access_tokens.AccessTokenVerifier`), keeps the bounded cache
of tokens it verified before, and refuses tokens of sessions it has been told are revoked.
It reads nothing itself: whoever owns it hands it keys (:meth:`Verifier.use_keys`) and
revocations (:meth:`Verifier.remember_revoked`). In the auth server that owner is the
:class:`~keyfob.SessionManager`, which fills it from the store; a resource server fills it
from the issuer's JWKS (:class:`~keyfob.core.jwk.PublicKeySet`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .core.access_tokens import AccessTokenVerifier
from .core.clock import Clock, SystemClock
from .core.jwk import ALGORITHMS, KeyLookup
from .core.keys import KeySet
from .core.models import Principal
from .core.revocation import RevokedSids
from .core.token_cache import VerifiedTokenCache
from .exceptions import AccessTokenRevoked

__all__ = ["Verifier"]


class Verifier:
    """Verifies access tokens locally: signature, claims, expiry and revocation.

    ``max_token_lifetime`` is the longest an access token of the issuer lives (its
    ``KEYFOB_ACCESS_TTL``): a revoked session is remembered that long after its
    revocation, plus the leeway, and then forgotten, since none of its tokens can be
    valid any more.
    """

    __slots__ = ("_cache", "_claims", "clock", "leeway", "max_token_lifetime", "revoked")

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: KeyLookup | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
        leeway: float = 30.0,
        max_token_lifetime: float = 900.0,
        cache_size: int = 10_000,
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.leeway = leeway
        self.max_token_lifetime = max_token_lifetime
        self.revoked = RevokedSids()
        self._claims = AccessTokenVerifier(
            keys if keys is not None else KeySet([]),
            issuer=issuer,
            audience=audience,
            algorithms=algorithms,
            leeway=leeway,
        )
        self._cache: VerifiedTokenCache[Principal] = VerifiedTokenCache(cache_size)

    def __repr__(self) -> str:
        return f"Verifier({self._claims!r})"

    def verify_access_token(self, token: str) -> Principal:
        """The principal of a valid access token; an :class:`InvalidToken` subclass otherwise.

        No I/O. A token verified before is answered from a bounded cache keyed by its exact
        text; expiry and revocation are still checked on every call.
        """
        now = self.clock.now()
        principal = self._cache.get(token, now) if type(token) is str else None
        if principal is None:
            claims = self._claims.verify(token, now=now)
            principal = Principal(
                user_id=claims.sub,
                sid=claims.sid,
                client_id=claims.client_id,
                scopes=claims.scope,
                expires_at=claims.exp,
                token_id=claims.jti,
            )
            leeway = self.leeway
            self._cache.put(
                token,
                principal,
                valid_from=claims.not_before - leeway,
                valid_until=claims.exp + leeway,
            )
        if self.revoked.is_revoked(principal.sid, now):
            raise AccessTokenRevoked("the session of this access token has been revoked")
        return principal

    async def verify_access_token_fresh(self, token: str) -> Principal:
        """:meth:`verify_access_token`: with keys and revocations handed in, nothing to pull."""
        return self.verify_access_token(token)

    def use_keys(self, keys: KeyLookup) -> None:
        """Verify with ``keys`` from now on (after a rotation, a reload or a JWKS fetch)."""
        # A withdrawn key must stop verifying at once, cached tokens included.
        self._cache.clear()
        self._claims = self._claims.with_keys(keys)

    def remember_revoked(self, sid: str, revoked_at: float) -> None:
        """Refuse the access tokens of session ``sid`` from now on."""
        # No access token of the session outlives revoked_at + lifetime + leeway.
        self.revoked.add(sid, revoked_at + self.max_token_lifetime + self.leeway)

    def forget_stale_revocations(self) -> None:
        """Drop revoked sessions none of whose access tokens can still be valid."""
        self.revoked.prune(self.clock.now())
