"""The keyfob ASGI app: ``create_app(settings, store)`` on plain Starlette.

Plain Starlette rather than FastAPI: the hot routes (refresh, token, protected) read one
or two fields and must not pay for a validation layer (docs/dependencies.md has the
measurement). The app owns a :class:`~keyfob.SessionManager`, started and closed by the
lifespan, and exposed as ``app.state.manager``.

Run it with uvicorn::

    KEYFOB_ISSUER=https://auth.example.com uvicorn --factory keyfob.server.app:app_from_env
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from ..core.clock import Clock
from ..exceptions import KeyfobError
from ..manager import ReuseHook, SessionManager
from ..settings import Settings
from ..store import Store, open_store
from ..transports.csrf import normalize_origin
from .context import ServerContext
from .errors import handle_exception, handle_http_exception, handle_keyfob_error
from .ratelimit import RateLimiter, RateLimits
from .routes_auth import AuthRoutes
from .routes_oauth import OAuthRoutes
from .routes_wellknown import WellKnownRoutes

__all__ = ["DEFAULT_ISSUER", "app_from_env", "create_app"]

logger = logging.getLogger("keyfob.server")

#: The issuer when ``settings.issuer`` is empty. ``keyfob serve`` passes its own
#: ``http://{host}:{port}``; behind a proxy set ``KEYFOB_ISSUER`` to the public URL.
DEFAULT_ISSUER: Final = "http://localhost:8000"

# How often each process reloads signing keys (another instance or `keyfob keys rotate`
# may have published one) and purges expired sessions.
_KEY_RELOAD_EVERY: Final = 60.0
_PURGE_EVERY: Final = 3600.0


def create_app(
    settings: Settings,
    store: Store | None = None,
    clock: Clock | None = None,
    *,
    on_reuse: ReuseHook | None = None,
    rate_limits: RateLimits | None = None,
) -> Starlette:
    """The auth server for ``settings``, on ``store`` (default: ``settings.store_url``).

    The issuer is ``settings.issuer``, or :data:`DEFAULT_ISSUER` when empty; the origins
    allowed for cookie requests are ``settings.allowed_origins``, or the issuer's origin.
    """
    if not settings.issuer:
        settings = settings.replace(issuer=DEFAULT_ISSUER)
    if store is None:
        store = open_store(settings.store_url, settings=settings)
    manager = SessionManager(settings, store, clock=clock, on_reuse=on_reuse)
    origins = settings.allowed_origins or (settings.issuer,)
    allowed = frozenset(o for o in map(normalize_origin, origins) if o)
    ctx = ServerContext(
        settings=settings,
        manager=manager,
        limiter=RateLimiter(rate_limits),
        allowed_origins=allowed,
    )
    auth = AuthRoutes(ctx)
    # Starlette tries routes in order: the hot ones (refresh, token, protected) first.
    routes: list[BaseRoute] = [
        *auth.hot_routes(),
        *OAuthRoutes(ctx).routes(),
        *auth.routes(),
        *WellKnownRoutes(ctx).routes(),
    ]

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
        maintenance = asyncio.create_task(_maintain(manager), name="keyfob-maintenance")
        try:
            yield
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
            await manager.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            KeyfobError: handle_keyfob_error,
            HTTPException: handle_http_exception,
            Exception: handle_exception,
        },
    )
    app.state.manager = manager
    app.state.keyfob = ctx
    return app


def app_from_env() -> Starlette:
    """``create_app(Settings.from_env())``: the factory for ``uvicorn --factory``."""
    return create_app(Settings.from_env())


async def _maintain(manager: SessionManager) -> None:
    """Reload signing keys every minute and purge expired sessions every hour."""
    since_purge = 0.0
    while True:
        await asyncio.sleep(_KEY_RELOAD_EVERY)
        since_purge += _KEY_RELOAD_EVERY
        try:
            await manager.reload_keys()
            if since_purge >= _PURGE_EVERY:
                since_purge = 0.0
                await manager.purge()
        except KeyfobError as exc:
            logger.warning("maintenance failed (will retry): %s", exc.description)
