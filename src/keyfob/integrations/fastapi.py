"""keyfob for FastAPI: the auth routes inside your app, and one dependency per route.

    from fastapi import Depends, FastAPI
    from keyfob import Principal, Settings
    from keyfob.integrations.fastapi import KeyfobAuth, require_session

    auth = KeyfobAuth.from_settings(Settings.from_env())
    app = FastAPI(lifespan=auth.lifespan)   # starts and stops keyfob's SessionManager
    auth.install(app)                       # /auth/*, /oauth/*, /.well-known/* in this app

    @app.get("/things")
    async def things(principal: Principal = Depends(require_session())):
        return {"user": principal.user_id}

How the pieces find each other:

- :meth:`KeyfobAuth.from_settings` builds keyfob's own server app (``create_app``) and
  keeps it; :meth:`KeyfobAuth.install` adds that app's routes to yours (the same route
  objects, not a re-implementation), its error handler for keyfob's errors, the
  client-address middleware of ``settings.forwarded_allow_ips``
  (:class:`~keyfob.server.forwarded.ForwardedMiddleware`: run uvicorn with
  ``--no-proxy-headers``), and stores the ``KeyfobAuth`` on ``app.state.keyfob_auth``.
  Create your app with ``FastAPI(redirect_slashes=False)``: otherwise ``/auth/login/``
  answers a redirect to a URL built from the request's ``Host`` header.
- :func:`require_session` reads ``request.app.state.keyfob_auth`` and verifies the bearer
  access token locally: 401 (``invalid_token``) or 403 (``insufficient_scope``) as
  RFC 6750 says, with a JSON ``{error, error_description}`` body.
- A service that only *verifies* tokens issued elsewhere uses
  ``KeyfobAuth(verifier).install(app)`` with any
  :class:`~keyfob.transports.bearer.TokenVerifier` (an object with
  ``async verify_access_token_fresh(token) -> Principal``); no routes are added.

The routes stay at the paths keyfob serves them on (``/auth/...``), because the refresh
cookie is scoped to ``Path=/auth``. The demo page (``/`` and ``/static``) is added only
with ``install(app, demo_page=True)``; keyfob's ``/openapi.json`` never is (FastAPI has
its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

try:
    from fastapi import FastAPI, Request, Security
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"keyfob.integrations.fastapi needs FastAPI: pip install 'keyfob[fastapi]' ({exc})"
    ) from exc

from ..core.clock import Clock
from ..core.models import Principal
from ..exceptions import (
    ConfigurationError,
    InvalidToken,
    IssuerUnavailable,
    KeyfobError,
    PermissionDenied,
    StoreUnavailable,
)
from ..settings import Settings
from ..store.protocol import Store
from ..transports.bearer import TokenVerifier, verify_bearer
from .starlette import error_response

if TYPE_CHECKING:
    from starlette.applications import Starlette

    # Only the types of from_settings and KeyfobAuth.manager: tokens are verified
    # through TokenVerifier, whatever implements it.
    from ..manager import ReuseHook, SessionManager

__all__ = ["BearerError", "KeyfobAuth", "require_session"]

#: The path prefixes of keyfob's API, added to the host app by ``install``.
_API_PREFIXES = ("/auth/", "/oauth/", "/.well-known/")
_DEMO_PATHS = ("/", "/static")
#: Health checks and (when KEYFOB_METRICS=on) metrics: docs/operations.md.
_OPERATIONS_PATHS = ("/healthz", "/readyz", "/metrics")

# Only for the OpenAPI document (the lock icon in /docs); the header is read by keyfob.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="keyfob",
    description="An access token from keyfob's /auth/login, /auth/refresh or /oauth/token.",
)


class BearerError(HTTPException):
    """A request refused by :func:`require_session`; rendered as RFC 6750 JSON.

    An ``HTTPException``, so that even without keyfob's handler the status and the
    ``WWW-Authenticate`` challenge come out right.
    """

    def __init__(self, error: KeyfobError) -> None:
        self.error = error
        self.response = error_response(error)
        headers = {
            name: self.response.headers[name]
            for name in ("WWW-Authenticate", "Retry-After")
            if name in self.response.headers
        }
        super().__init__(self.response.status_code, error.description, headers or None)


async def _bearer_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BearerError)
    # Rendered (and, for a fault, logged) once, when the error was raised.
    return exc.response


class KeyfobAuth:
    """keyfob inside a FastAPI app: the verifier for :func:`require_session` and,
    when built with :meth:`from_settings`, keyfob's routes and session manager."""

    def __init__(self, verifier: TokenVerifier, *, server: Starlette | None = None) -> None:
        if not isinstance(verifier, TokenVerifier):
            raise TypeError(
                "KeyfobAuth needs a token verifier (async verify_access_token_fresh), "
                "such as a SessionManager"
            )
        self.verifier = verifier
        #: keyfob's own server app, whose routes ``install`` adds (None: verify only).
        self.server = server

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store | None = None,
        *,
        clock: Clock | None = None,
        on_reuse: ReuseHook | None = None,
    ) -> KeyfobAuth:
        """keyfob's server (``create_app(settings, store, clock, on_reuse=...)``) for
        mounting; needs the ``server`` extra as well as FastAPI."""
        from ..server import create_app

        server = create_app(settings, store, clock, on_reuse=on_reuse)
        return cls(server.state.manager, server=server)

    @property
    def manager(self) -> SessionManager:
        """The session manager of keyfob's server (for admin actions in your own routes)."""
        if self.server is None:
            raise ConfigurationError("this KeyfobAuth only verifies tokens; it has no manager")
        manager: SessionManager = self.server.state.manager
        return manager

    @classmethod
    def of(cls, app: Starlette) -> KeyfobAuth:
        """The ``KeyfobAuth`` installed on ``app``."""
        auth = getattr(app.state, "keyfob_auth", None)
        if not isinstance(auth, KeyfobAuth):
            raise ConfigurationError(
                "keyfob is not installed on this app: call KeyfobAuth.install(app) first"
            )
        return auth

    def install(self, app: FastAPI, *, demo_page: bool = False) -> None:
        """Add keyfob's routes (when it has a server) and error handlers to ``app``."""
        app.state.keyfob_auth = self
        app.add_exception_handler(BearerError, _bearer_error_handler)
        if self.server is None:
            return
        from ..server.errors import handle_keyfob_error
        from ..server.forwarded import ForwardedMiddleware
        from ..server.hot import KeyfobApp

        # keyfob's routes raise keyfob's errors; this app renders them as keyfob does.
        app.add_exception_handler(KeyfobError, handle_keyfob_error)
        # keyfob's routes run in this app, not behind keyfob's own: the client's address
        # (rate limits, sessions, events) comes from the same trusted proxies here, for
        # this app's routes too (request.client).
        if isinstance(self.server, KeyfobApp):
            app.add_middleware(ForwardedMiddleware, proxies=self.server.trusted_proxies)
        for route in self.server.routes:
            path = getattr(route, "path", "")
            if (
                path.startswith(_API_PREFIXES)
                or path in _OPERATIONS_PATHS
                or (demo_page and path in _DEMO_PATHS)
            ):
                app.router.routes.append(route)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """``FastAPI(lifespan=auth.lifespan)``: runs keyfob's server lifespan (opening the
        store, loading keys, background maintenance). Nest it in your own lifespan with
        ``async with auth.lifespan(app): ...``."""
        if self.server is None:
            yield
            return
        async with self.server.router.lifespan_context(self.server):
            yield


def require_session(
    scopes: Iterable[str] = (),
) -> Callable[..., Awaitable[Principal]]:
    """A dependency that returns the caller's :class:`~keyfob.Principal`.

    ``Depends(require_session())`` needs a valid access token; with ``scopes`` the token
    must carry each of them. Refusals: 401 ``invalid_token`` (missing, malformed,
    expired, revoked), 403 ``insufficient_scope``, 503 when the store is down.
    """
    required = tuple(dict.fromkeys(scopes))
    if any(not isinstance(s, str) or not s or " " in s for s in required):
        raise ConfigurationError("scopes must be non-empty strings without spaces")

    async def session(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
    ) -> Principal:
        auth = KeyfobAuth.of(request.app)
        try:
            principal = await verify_bearer(auth.verifier, request.headers.getlist("authorization"))
        except (InvalidToken, StoreUnavailable, IssuerUnavailable) as exc:
            raise BearerError(exc) from None
        if not principal.has_scopes(required):
            missing = " ".join(s for s in required if s not in principal.scopes)
            raise BearerError(
                PermissionDenied(f"this needs the scope(s): {missing}", required_scopes=required)
            )
        return principal

    return session
