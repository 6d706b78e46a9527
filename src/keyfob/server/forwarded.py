"""The client's address and scheme in the ASGI scope, from trusted proxies' headers.

:func:`apply_forwarded` rewrites ``scope["client"]`` (and ``scope["scheme"]``) in place
with what :class:`~keyfob.transports.forwarded.TrustedProxies` concludes, so that every
reader of the scope agrees on who the client is: keyfob's rate limits, the address a
session records, security events, the user's own routes (``request.client``) and the
ASGI server's access log, which reads the same scope after the app answered.

keyfob's app does this itself (:class:`~keyfob.server.hot.KeyfobApp`); a host app that
adds keyfob's routes to its own (the FastAPI integration) gets
:class:`ForwardedMiddleware`. Run the ASGI server with its own proxy handling off
(uvicorn ``--no-proxy-headers``; ``keyfob serve`` does): uvicorn trusts 127.0.0.1 by
default, and once it has rewritten the scope, the peer's real address is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from ..transports.forwarded import TrustedProxies

__all__ = ["PEER_KEY", "ForwardedMiddleware", "apply_forwarded"]

#: The scope key that keeps the TCP peer once the client was resolved; its presence also
#: means "done", so a request that passes two resolvers is resolved once.
PEER_KEY: Final = "keyfob.peer"


def apply_forwarded(scope: Scope, proxies: TrustedProxies) -> None:
    """Resolve the client of an HTTP or WebSocket ``scope`` (once) and write it back."""
    if PEER_KEY in scope:
        return
    peer = scope.get("client")
    scope[PEER_KEY] = peer
    found = proxies.client(peer[0] if peer else None, scope["headers"])
    if found is None:
        return
    # The port of the client is not something proxies agree on: 0, as for "unknown".
    scope["client"] = (found.host, 0)
    if found.scheme is not None:
        secure = found.scheme == "https"
        if scope["type"] == "websocket":
            scope["scheme"] = "wss" if secure else "ws"
        else:
            scope["scheme"] = found.scheme


class ForwardedMiddleware:
    """ASGI middleware: the client's address from trusted proxies (:func:`apply_forwarded`).

    ``proxies`` is a :class:`TrustedProxies` or the addresses/CIDRs to build one from.
    """

    def __init__(self, app: ASGIApp, proxies: TrustedProxies | Iterable[str] = ()) -> None:
        self.app = app
        self.proxies = proxies if isinstance(proxies, TrustedProxies) else TrustedProxies(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            apply_forwarded(scope, self.proxies)
        await self.app(scope, receive, send)
