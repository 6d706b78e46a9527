"""Verify keyfob access tokens in another service, from the issuer's published keys.

    from keyfob.resource_server import RemoteVerifier

    verifier = RemoteVerifier("https://auth.example.com", audience="https://api.example.com")
    principal = verifier.verify_access_token(token)               # Flask, Django, scripts
    principal = await verifier.verify_access_token_fresh(token)   # asyncio frameworks

Each verification is local: a signature and claims check against the cached JWKS
(:mod:`keyfob.resource_server.jwks` decides when to fetch it), with the same rules as the
auth server itself — RFC 9068 ``typ``, the issuer, the audience, an asymmetric algorithm
from the allow-list, the key chosen by ``kid`` and never by the token's ``alg`` — and the
same bounded cache of tokens verified before (:class:`keyfob.verifier.Verifier`).

Fetches happen only when the keys are stale, on an unknown ``kid`` (at most once per
interval), and never concurrently: threads share one fetch (a lock), tasks share one fetch
(an asyncio lock). Until a first fetch succeeds every token is answered with
:class:`~keyfob.exceptions.IssuerUnavailable` (503: the token may be valid, the service
cannot tell yet); after that, failures keep the last good keys.

Redirects are not followed: the JWKS URL is configuration, and a redirect chosen by
whoever answers it must not move where keys come from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Sequence
from types import TracebackType

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"keyfob.resource_server needs httpx: pip install 'keyfob[resource]' ({exc})"
    ) from exc

from ..core.clock import Clock, SystemClock
from ..core.jwk import ALGORITHMS
from ..core.models import Principal
from ..exceptions import IssuerUnavailable, UnknownKeyId
from ..verifier import Verifier
from .feed import FeedSettings, RevocationFeedClient
from .jwks import JWKSFetchError, JWKSPolicy, KeyCache, KeyCacheHealth

__all__ = ["RemoteVerifier"]


class RemoteVerifier:
    """Access-token verification for a resource server; see the module docstring.

    ``issuer`` is the auth server's issuer (``KEYFOB_ISSUER``), ``audience`` the ``aud``
    its tokens carry for this service (``KEYFOB_AUDIENCE``, the issuer by default), and
    ``jwks_uri`` where its keys are (``{issuer}/.well-known/jwks.json`` by default).
    ``max_token_lifetime`` is the issuer's ``KEYFOB_ACCESS_TTL``: how long a revoked
    session must be remembered (revocations arrive through :meth:`remember_revoked`).
    ``revocation_feed`` starts a background thread that follows keyfob's revocation feed
    (:mod:`keyfob.resource_server.feed`) until :meth:`close`.
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str | None = None,
        jwks_uri: str | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
        leeway: float = 30.0,
        max_token_lifetime: float = 900.0,
        policy: JWKSPolicy | None = None,
        clock: Clock | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        cache_size: int = 10_000,
        revocation_feed: FeedSettings | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience or issuer
        self.jwks_uri = jwks_uri or issuer.rstrip("/") + "/.well-known/jwks.json"
        self.clock: Clock = clock or SystemClock()
        self._keys = KeyCache(policy)
        self._verifier = Verifier(
            issuer=issuer,
            audience=self.audience,
            algorithms=algorithms,
            leeway=leeway,
            max_token_lifetime=max_token_lifetime,
            cache_size=cache_size,
            clock=self.clock,
        )
        self._http = http_client
        self._own_http = http_client is None
        self._async_http = async_http_client
        self._own_async_http = async_http_client is None
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        # The feed thread adds while a caller may prune: the set's iteration needs a lock
        # (lookups on the verification path do not).
        self._revocations_lock = threading.Lock()
        self._feed: RevocationFeedClient | None = None
        if revocation_feed is not None:
            url = revocation_feed.url or issuer.rstrip("/") + "/oauth/revocations"
            self._feed = RevocationFeedClient(
                revocation_feed,
                url,
                self.remember_revoked,
                after_answer=self.forget_stale_revocations,
            )
            self._feed.start()

    def __repr__(self) -> str:
        return f"RemoteVerifier(issuer={self.issuer!r}, jwks_uri={self.jwks_uri!r})"

    @property
    def policy(self) -> JWKSPolicy:
        return self._keys.policy

    # --- verifying --------------------------------------------------------------------

    def verify_access_token(self, token: str) -> Principal:
        """The principal of a valid token; an ``InvalidToken`` subclass otherwise. May
        fetch the JWKS (blocking, bounded by the policy's timeout)."""
        if self._keys.should_fetch(self.clock.now()):
            self._fetch(unknown_kid=False)
        try:
            return self._verify(token)
        except UnknownKeyId:
            if not self._keys.should_fetch_for_unknown_kid(self.clock.now()):
                raise
            self._fetch(unknown_kid=True)
            return self._verify(token)

    async def verify_access_token_fresh(self, token: str) -> Principal:
        """:meth:`verify_access_token` for asyncio: fetches without blocking the loop.
        (The name is the :class:`~keyfob.transports.bearer.TokenVerifier` protocol's, so
        the Starlette and FastAPI integrations take a ``RemoteVerifier`` as it is.)"""
        if self._keys.should_fetch(self.clock.now()):
            await self._afetch(unknown_kid=False)
        try:
            return self._verify(token)
        except UnknownKeyId:
            if not self._keys.should_fetch_for_unknown_kid(self.clock.now()):
                raise
            await self._afetch(unknown_kid=True)
            return self._verify(token)

    def remember_revoked(self, sid: str, revoked_at: float) -> None:
        """Refuse the session's access tokens from now on (the revocation feed calls this)."""
        with self._revocations_lock:
            self._verifier.remember_revoked(sid, revoked_at)

    def forget_stale_revocations(self) -> None:
        """Drop revocations no token can outlive any more (the feed calls this after
        each answer, so the set stays bounded by one access-token lifetime)."""
        with self._revocations_lock:
            self._verifier.forget_stale_revocations()

    def health(self) -> KeyCacheHealth:
        """Keys loaded, whether they are fresh, the last success and the last error;
        with a revocation feed, its state in ``feed``."""
        health = self._keys.health(self.clock.now())
        if self._feed is not None:
            health = dataclasses.replace(health, feed=self._feed.health())
        return health

    def _verify(self, token: str) -> Principal:
        feed = self._feed
        if feed is not None and feed.settings.mode == "fail-closed" and feed.stale():
            # fail-closed: a revoked session might be accepted while the feed is down.
            raise IssuerUnavailable(
                "the revocation feed is unavailable", retry_after=feed.seconds_until_fresh()
            )
        if self._keys.keys is None:
            raise IssuerUnavailable(
                "the issuer's signing keys could not be fetched yet",
                retry_after=self._keys.retry_after(self.clock.now()),
            )
        return self._verifier.verify_access_token(token)

    # --- fetching ---------------------------------------------------------------------

    def _begin(self, *, unknown_kid: bool) -> float | None:
        """Under the fetch lock: the time of an attempt that is due now (recorded as
        begun), or None when another caller did the work while this one waited."""
        keys = self._keys
        now = self.clock.now()
        due = keys.should_fetch_for_unknown_kid(now) if unknown_kid else keys.should_fetch(now)
        if not due:
            return None
        keys.attempting(now, unknown_kid=unknown_kid)
        return now

    def _fetch(self, *, unknown_kid: bool) -> None:
        with self._lock:
            # Whoever waited for the lock may find the work done by the thread before it.
            now = self._begin(unknown_kid=unknown_kid)
            if now is None:
                return
            if self._http is None:
                self._http = httpx.Client(follow_redirects=False)
            deadline = time.monotonic() + self.policy.timeout
            try:
                with self._http.stream(
                    "GET",
                    self.jwks_uri,
                    headers=self._keys.request_headers(),
                    follow_redirects=False,
                    timeout=self.policy.timeout,
                ) as response:
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        self._check_read(body, deadline)
                    self._take(now, response, bytes(body))
            except (httpx.HTTPError, _ReadRefused) as exc:
                self._keys.unreachable(now, _describe(exc))

    async def _afetch(self, *, unknown_kid: bool) -> None:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            now = self._begin(unknown_kid=unknown_kid)
            if now is None:
                return
            if self._async_http is None:
                self._async_http = httpx.AsyncClient(follow_redirects=False)
            client = self._async_http
            try:
                async with asyncio.timeout(self.policy.timeout):
                    async with client.stream(
                        "GET",
                        self.jwks_uri,
                        headers=self._keys.request_headers(),
                        follow_redirects=False,
                        timeout=self.policy.timeout,
                    ) as response:
                        body = bytearray()
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            self._check_read(body, None)
                        self._take(now, response, bytes(body))
            except TimeoutError:
                self._keys.unreachable(now, "the JWKS fetch timed out")
            except (httpx.HTTPError, _ReadRefused) as exc:
                self._keys.unreachable(now, _describe(exc))

    def _check_read(self, body: bytearray, deadline: float | None) -> None:
        if len(body) > self.policy.max_bytes:
            raise _ReadRefused(f"the JWKS is larger than {self.policy.max_bytes} bytes")
        if deadline is not None and time.monotonic() > deadline:
            # A server that drips bytes under the per-read timeout still ends here.
            raise _ReadRefused("the JWKS fetch timed out")

    def _take(self, now: float, response: httpx.Response, body: bytes) -> None:
        headers = {k.lower(): v for k, v in response.headers.items()}
        try:
            changed = self._keys.answered(now, response.status_code, headers, body)
        except JWKSFetchError:
            return  # recorded in the cache's health; the last good keys stay
        if changed and self._keys.keys is not None:
            self._verifier.use_keys(self._keys.keys)

    # --- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the revocation feed; close the HTTP client this verifier made (not one
        it was given)."""
        if self._feed is not None:
            self._feed.close()
        if self._own_http and self._http is not None:
            self._http.close()
            self._http = None

    async def aclose(self) -> None:
        self.close()
        if self._own_async_http and self._async_http is not None:
            await self._async_http.aclose()
            self._async_http = None

    def __enter__(self) -> RemoteVerifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> RemoteVerifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _ReadRefused(Exception):
    """The answer grew past the size limit or the deadline while it was read."""


def _describe(exc: Exception) -> str:
    if isinstance(exc, _ReadRefused):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "the JWKS fetch timed out"
    return f"the JWKS could not be fetched: {type(exc).__name__}"
