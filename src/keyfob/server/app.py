"""The keyfob ASGI app: ``create_app(settings, store)`` on plain Starlette.

Plain Starlette rather than FastAPI: the hot routes (refresh, token, protected) read one
or two fields and must not pay for a validation layer (docs/dependencies.md has the
measurement). The app owns a :class:`~keyfob.SessionManager`, started and closed by the
lifespan, and exposed as ``app.state.manager``.

Run it with ``keyfob serve``, or with uvicorn and uvicorn's own forwarding-header
handling off (keyfob reads them itself, from ``KEYFOB_FORWARDED_ALLOW_IPS`` only)::

    KEYFOB_ISSUER=https://auth.example.com uvicorn --no-proxy-headers \
        --factory keyfob.server.app:app_from_env
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from ..core.clock import Clock
from ..exceptions import KeyfobError
from ..manager import ReuseHook, SessionManager
from ..oauth.metadata import JWKS_PATH, METADATA_PATH, OPENID_CONFIGURATION_PATH
from ..settings import Settings
from ..store import Store, open_store
from ..transports.forwarded import TrustedProxies
from ..transports.refresh import RefreshTransport
from ..webhooks.worker import WebhookWorker
from .context import ServerContext
from .cors import Cors
from .errors import handle_exception, handle_http_exception, handle_keyfob_error
from .hot import KeyfobApp
from .maintenance import PurgeLock, start_maintenance, stop_maintenance
from .operations import Operations
from .ratelimit import DEFAULT_STORAGE_URI, RateLimiter, RateLimits, redis_storage_uri
from .routes_auth import AuthRoutes
from .routes_authorize import AuthorizeRoutes
from .routes_oauth import OAuthRoutes
from .routes_oidc import OidcRoutes
from .routes_revocations import RevocationRoutes
from .routes_wellknown import WellKnownRoutes

if TYPE_CHECKING:
    from .fanout import RevocationFanout

__all__ = ["DEFAULT_ISSUER", "app_from_env", "create_app"]

logger = logging.getLogger("keyfob.server")

#: The issuer when ``settings.issuer`` is empty. ``keyfob serve`` passes its own
#: ``http://{host}:{port}``; behind a proxy set ``KEYFOB_ISSUER`` to the public URL.
DEFAULT_ISSUER: Final = "http://localhost:8000"


def create_app(
    settings: Settings,
    store: Store | None = None,
    clock: Clock | None = None,
    *,
    on_reuse: ReuseHook | None = None,
    rate_limits: RateLimits | None = None,
    middleware: Sequence[Middleware] = (),
) -> Starlette:
    """The auth server for ``settings``, on ``store`` (default: ``settings.store_url``).

    The issuer is ``settings.issuer``, or :data:`DEFAULT_ISSUER` when empty; the origins
    allowed for cookie requests are ``settings.allowed_origins``, or the issuer's origin.

    The rate limits are the settings' (``KEYFOB_RATE_LIMIT_*``,
    :meth:`RateLimits.from_settings`) unless ``rate_limits`` is given.
    With ``settings.redis_url``, rate-limit counters are shared through Redis (unless
    ``rate_limits`` names another storage) and revocations are also fanned out through
    Redis pub/sub (:mod:`keyfob.server.fanout`); without Redis, or while it is away,
    each process counts on its own and revocations travel through the store alone.

    The lifespan runs the background jobs of :mod:`keyfob.server.maintenance`:
    revocation resync, signing-key reload and purge.

    ``middleware`` is handed to Starlette (outermost first), like middleware added later
    with ``app.add_middleware``; either way it sees every request, the hot routes'
    (refresh, token, ``/auth/me``) too, which then give up their shortcut past the
    stack (:mod:`.hot`).

    The client's address (rate limits, the address a session records, events) is the
    TCP peer's, or, when the peer is one of ``settings.forwarded_allow_ips``, what its
    ``X-Forwarded-For``/``Forwarded`` headers say (:mod:`keyfob.transports.forwarded`).
    Paths are matched exactly: ``/auth/login/`` is a 404, never a redirect built from
    the request's ``Host`` header.
    """
    if not settings.issuer:
        settings = settings.replace(issuer=DEFAULT_ISSUER)
    if store is None:
        store = open_store(settings.store_url, settings=settings)
    purge_lock = store if isinstance(store, PurgeLock) else None
    fanout: RevocationFanout | None = None
    limits = rate_limits or RateLimits.from_settings(settings)
    if settings.redis_url:
        # Imported here: redis is an optional dependency, needed only with a Redis URL.
        from .fanout import RevocationFanout

        fanout = RevocationFanout(settings.redis_url)
        if limits.storage_uri == DEFAULT_STORAGE_URI:
            limits = dataclasses.replace(limits, storage_uri=redis_storage_uri(settings.redis_url))
    manager = SessionManager(
        settings, store, clock=clock, on_reuse=on_reuse, revocation_feed=fanout
    )
    limiter = RateLimiter(limits)
    ctx = ServerContext(
        settings=settings,
        manager=manager,
        limiter=limiter,
        transport=RefreshTransport.from_settings(settings),
    )
    auth = AuthRoutes(ctx)
    oauth = OAuthRoutes(ctx)
    oidc = OidcRoutes(ctx)
    # CORS for the public OAuth endpoints and documents only, never /auth (.cors).
    cors = Cors(settings.cors_origins)
    documents = WellKnownRoutes(ctx).routes()
    public_documents = [
        r
        for r in documents
        if isinstance(r, Route) and r.path in (JWKS_PATH, METADATA_PATH, OPENID_CONFIGURATION_PATH)
    ]
    hot_routes = [*auth.hot_routes(), *cors.apply(oauth.routes())]
    routes: list[BaseRoute] = [
        *hot_routes,
        *auth.routes(),
        *cors.apply(oauth.token_routes()),
        *AuthorizeRoutes(ctx).routes(),  # pages a browser navigates to: no CORS
        *cors.apply(oidc.userinfo_routes()),
        *oidc.end_session_routes(),  # a page browsers navigate to: no CORS
        *RevocationRoutes(ctx).routes(),  # for resource servers, not browsers: no CORS
        *cors.apply(public_documents),
        *(r for r in documents if r not in public_documents),
    ]
    operations = Operations(ctx)  # health, metrics, request and security logs
    routes.extend(operations.routes())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.insecure_dev_cookies:
            logger.warning(
                "KEYFOB_INSECURE_DEV_COOKIES is on: over plain HTTP to hosts other than "
                "localhost the refresh cookie is sent WITHOUT Secure and without its "
                "__Secure-/__Host- prefix. Anyone on the network can steal it. "
                "Development only."
            )
        await manager.start()
        try:
            if fanout is not None:
                await fanout.start()
            jobs = start_maintenance(manager, purge_lock=purge_lock)
            # The webhook outbox is sent from here, never from a request (docs/webhooks.md).
            webhooks = WebhookWorker.from_settings(settings, store, clock=manager.clock)
            webhooks.start()
            await operations.start()
            try:
                yield
            finally:
                await operations.stop()
                await webhooks.close()
                await stop_maintenance(jobs)
        finally:
            if fanout is not None:
                await fanout.close()
            await limiter.aclose()
            await manager.close()

    # The hot routes (refresh, token, protected) skip Starlette's layers when it has
    # no user middleware (.hot); they stay in the route list too, for HEAD, 405 answers
    # and the OpenAPI document.
    app = KeyfobApp(
        hot_routes={
            (method, route.path): route.endpoint
            for route in hot_routes
            for method in route.methods or ()
            if method != "HEAD"
        },
        routes=routes,
        trusted_proxies=TrustedProxies(settings.forwarded_allow_ips),
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            KeyfobError: handle_keyfob_error,
            HTTPException: handle_http_exception,
            Exception: handle_exception,
        },
    )
    # Starlette would answer "/auth/login/" with a redirect to an absolute URL built from
    # the Host header (any host a client names), and a 307 makes the client resend the
    # password there. keyfob's paths are exact.
    app.router.redirect_slashes = False
    operations.install(app, frozenset(route.path for route in hot_routes))
    app.state.manager = manager
    app.state.keyfob = ctx
    return app


def app_from_env() -> Starlette:
    """``create_app(Settings.from_env())``: the factory for ``uvicorn --factory``."""
    return create_app(Settings.from_env())
