"""Every error of every route as JSON ``{error, error_description}`` (spec §4).

keyfob's errors are rendered by :func:`keyfob.oauth.errors.render_error` from the facts
on their classes (status, wire code, challenge, ``Retry-After``), the same renderer the
framework integrations use; this module only wraps its answer in a Starlette response,
and turns Starlette's own routing errors (404, 405) into the same JSON.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..exceptions import KeyfobError

# The four "X as X" lines only serve server modules that still import these names from
# here (requests, ratelimit, routes_auth, routes_wellknown): their home is keyfob.exceptions.
from ..exceptions import NotFound as NotFound
from ..exceptions import PayloadTooLarge as PayloadTooLarge
from ..exceptions import RateLimited as RateLimited
from ..exceptions import UnsupportedMediaType as UnsupportedMediaType
from ..oauth.errors import NO_STORE_HEADERS, error_body, render_error
from .request_log import note_error
from .responses import json_response

__all__ = ["error_response", "handle_exception", "handle_http_exception", "handle_keyfob_error"]

_REASONS = {404: ("not_found", "no such route"), 405: ("method_not_allowed", "")}


def error_response(exc: KeyfobError, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON answer for ``exc``, with the headers its class calls for (and ``headers``)."""
    note_error(exc)  # for the request log and metrics
    status, body, out = render_error(exc)
    out.update(headers or {})
    return json_response(body, status, out)


async def handle_keyfob_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KeyfobError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """404 and 405 from routing and static files, as JSON."""
    assert isinstance(exc, HTTPException)
    headers = {**NO_STORE_HEADERS, **(exc.headers or {})}
    if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
        # No CORS preflight is ever granted: a cross-site page then cannot send the
        # X-Keyfob-CSRF header (spec §5).
        headers.pop("Allow", None)
        body = error_body("invalid_request", "cross-origin requests are not allowed")
        return json_response(body, 403, headers)
    code, description = _REASONS.get(exc.status_code, ("invalid_request", ""))
    if exc.status_code >= 500:
        code = "server_error"
    return json_response(error_body(code, description or str(exc.detail)), exc.status_code, headers)


async def handle_exception(request: Request, exc: Exception) -> Response:
    """Anything else: a JSON 500 that says nothing about the cause. The traceback is
    logged once, by whoever caught it: Starlette re-raises it to the ASGI server after
    this answer, and keyfob's hot routes log it themselves."""
    status, body, headers = render_error(exc)
    return json_response(body, status, headers)
