"""The routes every client calls all the time, answered without Starlette's layers.

A refresh, a token request or a protected call is one dictionary lookup away from its
handler: no middleware stack, no route matching by regular expression, no per-request
exception-handler lookup. Together those cost about as much as the route's own Python
work on a protected call (docs/benchmarks.md). The handlers are the same ones Starlette
routes to, and errors become the same JSON answers; every other request, and any
request under a ``root_path`` (the app mounted inside another), goes through Starlette.

The client's address is resolved first (:mod:`.forwarded`), on every route when proxies
are trusted; with none trusted, the hot routes skip even that (they read no address) and
the others only look for forwarding headers to warn about, once.

Only while the stack holds nothing but Starlette's own error layers: middleware the
user installed (``create_app(middleware=...)`` or ``app.add_middleware``) must see
every request, so with any, every request goes through the stack. Starlette builds the
stack on the first call and refuses new middleware after that, so the choice is made
once, there.

With an :attr:`KeyfobApp.observer` (:mod:`.request_log`: metrics, request log), every
HTTP request passes through it; a hot route's answer reports its status back, so the
observer need not wrap ``send`` for the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..exceptions import KeyfobError
from ..transports.forwarded import TrustedProxies
from .errors import error_response, handle_exception
from .forwarded import apply_forwarded
from .request_log import RequestObserver

__all__ = ["Endpoint", "KeyfobApp"]

logger = logging.getLogger("keyfob.server")

Endpoint = Callable[[Request], Awaitable[Response]]


class KeyfobApp(Starlette):
    """Starlette, with ``hot_routes`` ((method, path) → handler) taken first unless the
    app has middleware of the user's, and the client's address taken from the forwarding
    headers of ``trusted_proxies`` (none by default)."""

    def __init__(
        self,
        *,
        hot_routes: Mapping[tuple[str, str], Endpoint],
        trusted_proxies: TrustedProxies | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trusted_proxies = trusted_proxies or TrustedProxies()
        # Read once per request: whether any proxy is trusted at all.
        self._forwarded = self.trusted_proxies.enabled
        self._hot_routes = dict(hot_routes)
        #: The routes taken first: decided with the middleware stack.
        self._hot: dict[tuple[str, str], Endpoint] = {}
        #: Times, counts and logs every HTTP request (metrics, request log), if set.
        self.observer: RequestObserver | None = None

    def build_middleware_stack(self) -> ASGIApp:
        # Starlette 1.x's request-body limit is a layer of the stack too.
        body_limit = getattr(self, "max_body_size", None)
        bypass = not self.user_middleware and body_limit is None
        self._hot = self._hot_routes if bypass else {}
        return super().build_middleware_stack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        if scope["type"] == "http":
            if self._forwarded:
                apply_forwarded(scope, self.trusted_proxies)
            observer = self.observer
            if not scope.get("root_path"):
                endpoint = self._hot.get((scope["method"], scope["path"]))
                if endpoint is not None:
                    scope["app"] = self
                    if observer is None:
                        await _answer(endpoint, scope, receive, send)
                    else:
                        await observer.hot(endpoint, scope, receive, send, _answer)
                    return
            if not self._forwarded:
                # Nothing to rewrite; only forwarding headers to warn about, once.
                apply_forwarded(scope, self.trusted_proxies)
            if observer is not None:
                await observer(scope, receive, send, super().__call__)
                return
        elif scope["type"] == "websocket":
            apply_forwarded(scope, self.trusted_proxies)
        await super().__call__(scope, receive, send)


async def _answer(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> int:
    """Answer with ``endpoint``; return the status sent."""
    request = Request(scope, receive, send)
    try:
        response = await endpoint(request)
    except KeyfobError as exc:
        response = error_response(exc)
    except Exception as exc:
        # What Starlette's error middleware would do: log it, answer a bare JSON 500.
        logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
        response = await handle_exception(request, exc)
    await response(scope, receive, send)
    return response.status_code
