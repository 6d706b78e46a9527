"""The OAuth client registry carried out through a store: register, look up, remove,
rotate secrets, and authenticate clients at the token endpoint (RFC 6749 §2.3, RFC 7523).

The rules are pure (:mod:`keyfob.core.clients`, :mod:`keyfob.core.client_assertion`);
this module adds the store: reading the client, and remembering each ``private_key_jwt``
assertion's ``jti`` so an assertion is accepted once. keyfob's own first-party client
(``keyfob``, public) is built in, never stored: ``get`` answers it without I/O, so the
first-party API pays nothing for the registry.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

from .core.client_assertion import verify_client_assertion
from .core.clients import (
    FIRST_PARTY_CLIENT,
    FIRST_PARTY_CLIENT_ID,
    SECRET_AUTH_METHODS,
    AuthMethod,
    Client,
    ClientCredentials,
    client_secret_matches,
    hash_client_secret,
    new_client,
    new_client_id,
    new_client_secret,
)
from .core.clock import Clock
from .exceptions import (
    ClientNotFound,
    ConfigurationError,
    InvalidClient,
    InvalidClientMetadata,
    StoreIntegrityError,
)
from .store.protocol import ClientStore

__all__ = ["CLIENT_CACHE_SIZE", "CLIENT_CACHE_TTL", "MAX_ASSERTION_LIFETIME", "Clients"]

#: The longest-lived client assertion accepted, in seconds: its ``jti`` is remembered
#: that long. An hour, since common clients (Authlib) sign assertions for an hour.
MAX_ASSERTION_LIFETIME: Final = 3600.0
#: How long (seconds) a client read from the store is reused by this process. Every token
#: request of a registered client needs its registration; a store read costs about as
#: much as the refresh's own update (docs/design.md), and registrations change rarely. A
#: removal or a new secret made through this manager counts at once; one made by another
#: process (``keyfob clients``) within this long, like a revocation's resync.
CLIENT_CACHE_TTL: Final = 2.0
#: How many registrations are kept; unknown ids are never cached, so a flood of made-up
#: ids cannot grow it.
CLIENT_CACHE_SIZE: Final = 1024


class Clients:
    """OAuth clients in one store."""

    def __init__(self, store: ClientStore, *, clock: Clock, leeway: float) -> None:
        self._store = store
        self._clock = clock
        self._leeway = leeway
        #: client_id -> (the client, when it was read); insertion order is age order.
        self._cache: dict[str, tuple[Client, float]] = {}

    async def register(
        self,
        *,
        name: str,
        auth_method: AuthMethod,
        client_id: str | None = None,
        redirect_uris: Sequence[str] = (),
        grant_types: Sequence[str] = ("refresh_token",),
        scopes: Iterable[str] = (),
        jwks: str | None = None,
        require_pkce: bool = True,
        first_party: bool = False,
        allowed_scopes: Collection[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
    ) -> tuple[Client, str | None]:
        """Register a client; return it and its secret, which is shown this once and
        kept only as a hash (``None`` for clients without a secret).

        ``allowed_scopes``, when not empty, is every scope the deployment knows: a client
        may be registered only for those.
        """
        scope_list = list(scopes)
        unknown = set(scope_list).difference(allowed_scopes) if allowed_scopes else set()
        if unknown:
            raise InvalidClientMetadata(
                f"scopes not offered by this server: {' '.join(sorted(unknown))}"
            )
        secret = new_client_secret() if auth_method in SECRET_AUTH_METHODS else None
        client = new_client(
            client_id=client_id or new_client_id(),
            name=name,
            auth_method=auth_method,
            redirect_uris=redirect_uris,
            grant_types=grant_types,
            scopes=scope_list,
            created_at=self._clock.now(),
            secret=secret,
            jwks=jwks,
            require_pkce=require_pkce,
            first_party=first_party,
            post_logout_redirect_uris=post_logout_redirect_uris,
        )
        await self._store.create_client(client)
        return client, secret

    async def get(self, client_id: str) -> Client | None:
        """The client with this id (the built-in first-party one included), or None."""
        if client_id == FIRST_PARTY_CLIENT_ID:
            return FIRST_PARTY_CLIENT
        now = self._clock.now()
        cached = self._cache.get(client_id)
        if cached is not None and 0 <= now - cached[1] < CLIENT_CACHE_TTL:
            return cached[0]
        client = await self._store.get_client(client_id)
        self._cache.pop(client_id, None)
        if client is not None:
            if len(self._cache) >= CLIENT_CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[client_id] = (client, now)
        return client

    async def list(self) -> list[Client]:
        """Every registered client, oldest first (the built-in one is not listed)."""
        return await self._store.list_clients()

    async def remove(self, client_id: str) -> bool:
        """Remove a registered client. Its sessions can no longer refresh (the token
        endpoint no longer knows the client); their access tokens run out."""
        if client_id == FIRST_PARTY_CLIENT_ID:
            raise InvalidClientMetadata("the first-party client is built in")
        self._cache.pop(client_id, None)
        return await self._store.delete_client(client_id)

    async def rotate_secret(self, client_id: str) -> str:
        """Give a ``client_secret_*`` client a new secret; the old one stops working now."""
        client = await self.get(client_id)
        if client is None:
            raise ClientNotFound(f"no client {client_id!r}")
        if client.auth_method not in SECRET_AUTH_METHODS:
            raise InvalidClientMetadata(
                f"client {client_id!r} authenticates with {client.auth_method}: it has no secret"
            )
        secret = new_client_secret()
        self._cache.pop(client_id, None)
        if not await self._store.set_client_secret_hash(client_id, hash_client_secret(secret)):
            raise ClientNotFound(f"no client {client_id!r}")
        return secret

    async def authenticate(
        self, credentials: ClientCredentials, *, audiences: Collection[str]
    ) -> Client:
        """The client these credentials prove (or, for a public client, name).

        A request naming no client is keyfob's own first-party client. Every failure is
        :class:`InvalidClient`: unknown client, a method other than the one registered
        (RFC 7591 ``token_endpoint_auth_method``), a wrong secret, an assertion that
        fails :func:`verify_client_assertion` (``audiences``: the URLs it may be
        addressed to), or one used before.
        """
        if credentials.client_id is None:
            if credentials.method != "none":
                raise InvalidClient("the client is not identified")
            return FIRST_PARTY_CLIENT
        client = await self.get(credentials.client_id)
        if client is None:
            raise InvalidClient("unknown client")
        if credentials.method != client.auth_method:
            raise InvalidClient(
                f"the client must authenticate with {client.auth_method}"
                if client.confidential
                else "a public client has no credentials to present"
            )
        if client.auth_method in SECRET_AUTH_METHODS:
            if credentials.secret is None or not client_secret_matches(
                credentials.secret, client.secret_hash
            ):
                raise InvalidClient("client authentication failed")
        elif client.auth_method == "private_key_jwt":
            await self._check_assertion(client, credentials.assertion, audiences)
        return client

    async def _check_assertion(
        self, client: Client, assertion: str | None, audiences: Collection[str]
    ) -> None:
        if assertion is None:
            raise InvalidClient("client authentication failed")
        try:
            keys = client.public_key_set()
        except (ValueError, ConfigurationError):
            raise StoreIntegrityError(
                f"client {client.client_id} has an unusable JWK Set"
            ) from None
        now = self._clock.now()
        # Signature and claims first: a forged assertion never reaches the store.
        used = verify_client_assertion(
            assertion,
            client_id=client.client_id,
            keys=keys,
            audiences=audiences,
            now=now,
            leeway=self._leeway,
            max_lifetime=MAX_ASSERTION_LIFETIME,
        )
        # Remembered until it expires, with the leeway the expiry check allows.
        fresh = await self._store.use_assertion_id(
            client.client_id, used.jti, expires_at=used.expires_at + self._leeway, now=now
        )
        if not fresh:
            raise InvalidClient("the client assertion was used before")
