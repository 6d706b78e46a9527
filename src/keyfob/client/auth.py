"""``KeyfobAuth``: an ``httpx.Auth`` that keeps a session's access token fresh.

    auth = KeyfobAuth.login("https://auth.example", "alice", password, token_saver=store)
    with httpx.Client(auth=auth) as api:
        api.get("https://api.example/things")

Per request: use the access token, refreshing first when it is due (``skew`` seconds
before it expires); on a ``401`` with ``Bearer error="invalid_token"``, refresh once and
send the request once more. Refreshes are single-flight (:mod:`.state`) across threads,
asyncio tasks and event loops. New tokens go to ``token_saver`` BEFORE they are used, so
a crash never loses the only valid refresh token; if the saver fails, the new tokens are
not used at all (the server hands out the same successor again within its grace window).

The access token lives in memory only. The refresh token is sent to the token endpoint
only (:mod:`.endpoints`): requests through the authenticated client carry the access
token and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
import webbrowser
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import Future
from typing import TypedDict, Unpack

import httpx

from .challenge import is_invalid_token
from .code_grant import BrowserOpener, authorize_async, authorize_sync
from .endpoints import KeyfobEndpoint, TokenEndpoint
from .errors import TokenEndpointUnavailable, TokenSaveError
from .flow import Flow, login_flow, refresh_flow, run_async, run_sync
from .retry import RetryPolicy
from .state import Follow, Fresh, Lead, TokenState, Versioned
from .tokens import TokenSet

__all__ = ["AuthOptions", "KeyfobAuth", "TokenSaver"]

logger = logging.getLogger("keyfob.client")

#: Called with every new :class:`TokenSet` before it is used; it should persist
#: ``tokens.refresh_token`` durably and return (or raise to refuse the tokens). Runs in
#: the refreshing thread, or in the event loop for async clients: keep it short.
TokenSaver = Callable[[TokenSet], None]


class AuthOptions(TypedDict, total=False):
    """The keyword options shared by :class:`KeyfobAuth` and its login constructors."""

    token_saver: TokenSaver | None
    retry: RetryPolicy
    skew: float
    timeout: float
    clock: Callable[[], float]
    token_client: httpx.Client | None
    async_token_client: httpx.AsyncClient | None


class KeyfobAuth(httpx.Auth):
    """Bearer auth for ``httpx.Client`` and ``httpx.AsyncClient`` that refreshes itself.

    ``endpoint``: where refreshes go (:class:`~keyfob.client.OAuthTokenEndpoint` for any
    RFC 6749 server, :class:`~keyfob.client.KeyfobEndpoint` for keyfob's ``/auth``).
    ``tokens``: the starting pair, or ``TokenSet(refresh_token=...)`` alone.
    ``token_saver``: receives each new pair before it is used. ``retry``: bounds on
    retrying one refresh. ``skew``: refresh this many seconds before expiry (at most half
    the token's life). ``timeout``: per token request, when the auth opens its own
    connection. ``clock``: seconds since the epoch. ``token_client`` /
    ``async_token_client``: send token requests with these clients (proxies, TLS
    settings) instead of a fresh connection per refresh; they are not closed here.
    """

    # The body is read before sending, so the request can be sent again after a refresh.
    requires_request_body = True

    def __init__(
        self,
        endpoint: TokenEndpoint,
        tokens: TokenSet,
        *,
        token_saver: TokenSaver | None = None,
        retry: RetryPolicy | None = None,
        skew: float = 30.0,
        timeout: float = 8.0,
        clock: Callable[[], float] = time.time,
        token_client: httpx.Client | None = None,
        async_token_client: httpx.AsyncClient | None = None,
    ) -> None:
        if skew < 0 or timeout <= 0:
            raise ValueError("skew must not be negative and timeout must be positive")
        self.endpoint = endpoint
        self._saver = token_saver
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._clock = clock
        self._token_client = token_client
        self._async_token_client = async_token_client
        self._state = TokenState(tokens, skew=skew, now=clock())
        # Refresh tasks outlive a cancelled requester (the flight must settle for the
        # others); holding them here keeps them from being garbage-collected mid-flight.
        self._tasks: set[asyncio.Task[None]] = set()

    # --- constructors ------------------------------------------------------------------

    @classmethod
    def login(
        cls, base_url: str, username: str, password: str, **options: Unpack[AuthOptions]
    ) -> KeyfobAuth:
        """Log in to keyfob (``POST /auth/login``, ``transport: "body"``) and return an auth
        that refreshes through ``/auth/refresh``. The saver gets the first pair at once."""
        endpoint = KeyfobEndpoint(base_url)
        clock = options.get("clock", time.time)
        flow = login_flow(endpoint, username, password, clock)
        tokens = run_sync(flow, options.get("token_client"), options.get("timeout", 8.0))
        _save(options.get("token_saver"), tokens)
        return cls(endpoint, tokens, **options)

    @classmethod
    async def alogin(
        cls, base_url: str, username: str, password: str, **options: Unpack[AuthOptions]
    ) -> KeyfobAuth:
        """:meth:`login` for asyncio programs."""
        endpoint = KeyfobEndpoint(base_url)
        clock = options.get("clock", time.time)
        flow = login_flow(endpoint, username, password, clock)
        client = options.get("async_token_client")
        tokens = await run_async(flow, client, options.get("timeout", 8.0))
        _save(options.get("token_saver"), tokens)
        return cls(endpoint, tokens, **options)

    @classmethod
    def authorize(
        cls,
        issuer: str,
        client_id: str,
        *,
        scope: str = "",
        client_secret: str | None = None,
        open_browser: BrowserOpener = webbrowser.open,
        wait: float = 300.0,
        redirect_path: str = "/callback",
        **options: Unpack[AuthOptions],
    ) -> KeyfobAuth:
        """Sign the person in through the server's authorization page: the
        authorization-code flow with PKCE S256 and a loopback redirect (RFC 8252 §7.3).

        ``issuer``: the server's issuer URL (its RFC 8414 metadata is read from it).
        ``client_id``: a client registered with a loopback redirect URI
        (``http://127.0.0.1/callback``, any port). ``open_browser`` shows the URL
        (``webbrowser.open``; pass your own for a headless program). ``wait``: how long
        the person has to sign in. Returns an auth that refreshes at the token endpoint;
        the saver gets the first pair at once. Raises :class:`AuthorizationFailed`
        (refused, timed out, or an answer that fails its ``state``/``iss`` checks) or
        :class:`LoginFailed` (the code was refused)."""
        clock = options.get("clock", time.time)
        endpoint, tokens = authorize_sync(
            issuer,
            client_id,
            client_secret=client_secret,
            scope=scope,
            open_browser=open_browser,
            wait=wait,
            redirect_path=redirect_path,
            client=options.get("token_client"),
            timeout=options.get("timeout", 8.0),
            clock=clock,
        )
        _save(options.get("token_saver"), tokens)
        return cls(endpoint, tokens, **options)

    @classmethod
    async def aauthorize(
        cls,
        issuer: str,
        client_id: str,
        *,
        scope: str = "",
        client_secret: str | None = None,
        open_browser: BrowserOpener = webbrowser.open,
        wait: float = 300.0,
        redirect_path: str = "/callback",
        **options: Unpack[AuthOptions],
    ) -> KeyfobAuth:
        """:meth:`authorize` for asyncio programs."""
        clock = options.get("clock", time.time)
        endpoint, tokens = await authorize_async(
            issuer,
            client_id,
            client_secret=client_secret,
            scope=scope,
            open_browser=open_browser,
            wait=wait,
            redirect_path=redirect_path,
            client=options.get("async_token_client"),
            request_timeout=options.get("timeout", 8.0),
            clock=clock,
        )
        _save(options.get("token_saver"), tokens)
        return cls(endpoint, tokens, **options)

    # --- what the caller may look at ---------------------------------------------------

    @property
    def tokens(self) -> TokenSet:
        """The current pair (raises :class:`~keyfob.client.SessionEnded` once ended)."""
        return self._state.current().tokens

    def __repr__(self) -> str:
        try:
            state = repr(self._state.current().tokens)
        except Exception:  # the session ended: say so rather than fail in a repr
            state = "ended"
        return f"KeyfobAuth(endpoint={self.endpoint.url!r}, tokens={state})"

    # --- httpx.Auth ----------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        current = self._sync_ready()
        _authorize(request, current)
        response = yield request
        if response.status_code != 401 or not _says_invalid_token(response):
            return
        logger.debug("access token refused (401 invalid_token): refreshing once")
        _authorize(request, self._sync_refresh(current.version))
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        current = await self._async_ready()
        _authorize(request, current)
        response = yield request
        if response.status_code != 401 or not _says_invalid_token(response):
            return
        logger.debug("access token refused (401 invalid_token): refreshing once")
        _authorize(request, await self._async_refresh(current.version))
        yield request

    # --- threads -------------------------------------------------------------------------

    def _sync_ready(self) -> Versioned:
        current = self._state.current()
        if not current.due(self._clock()):
            return current
        try:
            return self._sync_refresh(current.version)
        except TokenEndpointUnavailable:
            # Refreshing ahead of expiry found the server unavailable: the access token
            # still works until it expires, so use it rather than fail the request.
            if not current.usable(self._clock()):
                raise
            logger.warning("refresh ahead of expiry failed; using the current access token")
            return current

    def _sync_refresh(self, seen_version: int) -> Versioned:
        decision = self._state.begin(seen_version)
        if isinstance(decision, Fresh):
            return decision.current
        if isinstance(decision, Follow):
            return decision.flight.result()
        try:
            tokens = run_sync(
                self._refresh_flow(decision.refresh_token), self._token_client, self._timeout
            )
            _save(self._saver, tokens)
        except BaseException as exc:
            self._state.fail(decision.flight, _for_followers(exc))
            raise
        return self._state.commit(decision.flight, tokens, now=self._clock())

    # --- asyncio -------------------------------------------------------------------------

    async def _async_ready(self) -> Versioned:
        current = self._state.current()
        if not current.due(self._clock()):
            return current
        try:
            return await self._async_refresh(current.version)
        except TokenEndpointUnavailable:
            # Refreshing ahead of expiry found the server unavailable: the access token
            # still works until it expires, so use it rather than fail the request.
            if not current.usable(self._clock()):
                raise
            logger.warning("refresh ahead of expiry failed; using the current access token")
            return current

    async def _async_refresh(self, seen_version: int) -> Versioned:
        decision = self._state.begin(seen_version)
        if isinstance(decision, Fresh):
            return decision.current
        if isinstance(decision, Lead):
            lead = self._lead(decision.flight, decision.refresh_token)
            task = asyncio.get_running_loop().create_task(lead)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # The leader waits on the flight like everybody else, so cancelling the request
        # that started the refresh leaves the refresh running to completion for the others.
        return await asyncio.wrap_future(decision.flight)

    async def _lead(self, flight: Future[Versioned], refresh_token: str) -> None:
        try:
            tokens = await run_async(
                self._refresh_flow(refresh_token), self._async_token_client, self._timeout
            )
            _save(self._saver, tokens)
        except BaseException as exc:
            self._state.fail(flight, _for_followers(exc))
            if not isinstance(exc, Exception):
                raise
            return
        self._state.commit(flight, tokens, now=self._clock())

    def _refresh_flow(self, refresh_token: str) -> Flow:
        logger.debug("refreshing the access token at %s", self.endpoint.url)
        return refresh_flow(self.endpoint, refresh_token, self._retry, self._clock)


def _authorize(request: httpx.Request, current: Versioned) -> None:
    assert current.tokens.access_token is not None  # a Versioned in use always has one
    request.headers["Authorization"] = f"Bearer {current.tokens.access_token}"


def _says_invalid_token(response: httpx.Response) -> bool:
    return is_invalid_token(response.headers.get_list("www-authenticate"))


def _save(saver: TokenSaver | None, tokens: TokenSet) -> None:
    if saver is None:
        return
    try:
        saver(tokens)
    except Exception as exc:
        raise TokenSaveError(
            f"token_saver failed ({type(exc).__name__}); the new tokens were not used"
        ) from exc


def _for_followers(exc: BaseException) -> BaseException:
    # A KeyboardInterrupt or a cancellation belongs to the leader alone: the requests
    # waiting on its flight see an ordinary, catchable error.
    if isinstance(exc, Exception):
        return exc
    reason = f"the refresh was interrupted ({type(exc).__name__})"
    return TokenEndpointUnavailable(reason, attempts=1)
