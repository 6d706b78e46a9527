"""CORS for the public OAuth endpoints, the JWKS and the metadata (spec §8
``KEYFOB_CORS_ORIGINS``), for the configured origins only; none by default.

Not a middleware: a middleware sees every request, so it would take the hot routes off
their shortcut (:mod:`.hot`) and would have to be taught to leave ``/auth/*`` alone.
Instead :meth:`Cors.apply` wraps the endpoints of exactly the routes it is given and
adds an ``OPTIONS`` route answering their preflights. With no origins configured it
changes nothing at all.

What a browser on an allowed origin gets: ``Access-Control-Allow-Origin`` with its own
origin on every answer, errors included (else the page could not read the error),
``Vary: Origin`` on every answer of these routes (they are cached by origin-unaware
caches otherwise), and ``WWW-Authenticate`` and ``Retry-After`` exposed. Never
``Access-Control-Allow-Credentials``: these endpoints take no cookies, and the cookie
routes under ``/auth`` get no CORS at all, so a foreign page cannot use the refresh
cookie (spec §5). A preflight from any other origin is 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..exceptions import ConfigurationError, CSRFRejected, InvalidRequest, KeyfobError
from ..transports.csrf import normalize_origin
from .errors import error_response

__all__ = ["Cors"]

Endpoint = Callable[[Request], Awaitable[Response]]

#: Request headers a client may send: client credentials and the form's media type.
_ALLOW_HEADERS: Final = "Authorization, Content-Type"
#: Response headers a page may read beyond the safelisted ones.
_EXPOSE_HEADERS: Final = "WWW-Authenticate, Retry-After"
#: How long a browser may cache a preflight answer (seconds).
_MAX_AGE: Final = "600"


class Cors:
    """Cross-origin access for a set of origins."""

    def __init__(self, origins: Iterable[str]) -> None:
        normalized: set[str] = set()
        for origin in origins:
            if origin == "*":
                raise ConfigurationError("KEYFOB_CORS_ORIGINS names origins, not '*'")
            value = normalize_origin(origin)
            if not value:
                raise ConfigurationError(f"KEYFOB_CORS_ORIGINS: {origin!r} is not an origin")
            normalized.add(value)
        self.origins = frozenset(normalized)

    def __repr__(self) -> str:
        return f"Cors(origins={sorted(self.origins)!r})"

    def allowed(self, origin: str | None) -> str | None:
        """The normalised origin if it is allowed, else None."""
        if origin is None:
            return None
        value = normalize_origin(origin)
        return value if value in self.origins else None

    def apply(self, routes: Sequence[Route]) -> list[Route]:
        """``routes`` with CORS on their answers, plus one ``OPTIONS`` route per path for
        preflights. Unchanged when no origin is configured."""
        if not self.origins:
            return list(routes)
        out: list[Route] = []
        methods_by_path: dict[str, set[str]] = {}
        for route in routes:
            methods = set(route.methods or ()) - {"HEAD"}
            methods_by_path.setdefault(route.path, set()).update(methods)
            out.append(Route(route.path, self._wrap(route.endpoint), methods=sorted(methods)))
        for path, methods in methods_by_path.items():
            out.append(Route(path, self._preflight(sorted(methods)), methods=["OPTIONS"]))
        return out

    def _headers(self, origin: str | None) -> dict[str, str]:
        allowed = self.allowed(origin)
        headers = {"Vary": "Origin"}
        if allowed is not None:
            headers["Access-Control-Allow-Origin"] = allowed
            headers["Access-Control-Expose-Headers"] = _EXPOSE_HEADERS
        return headers

    def _wrap(self, endpoint: Endpoint) -> Endpoint:
        async def with_cors(request: Request) -> Response:
            try:
                response = await endpoint(request)
            except KeyfobError as exc:
                # Rendered here, not by the app's handler, so the error carries CORS too.
                response = error_response(exc)
            response.headers.update(self._headers(request.headers.get("origin")))
            return response

        return with_cors

    def _preflight(self, methods: list[str]) -> Endpoint:
        allow_methods = ", ".join(methods)

        async def preflight(request: Request) -> Response:
            origin = request.headers.get("origin")
            requested = request.headers.get("access-control-request-method")
            headers = {"Vary": "Origin"}
            if self.allowed(origin) is None:
                return error_response(
                    CSRFRejected("this origin may not call this endpoint from a browser"),
                    headers,
                )
            if requested is None or requested not in methods:
                return error_response(
                    InvalidRequest(f"this endpoint answers {allow_methods}"), headers
                )
            headers.update(self._headers(origin))
            headers["Access-Control-Allow-Methods"] = allow_methods
            headers["Access-Control-Allow-Headers"] = _ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = _MAX_AGE
            return Response(None, 204, headers)

        return preflight
