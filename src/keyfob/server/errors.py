"""Every error of every route as JSON ``{error, error_description}`` (spec §4): one table.

The table maps keyfob's exception classes (whose ``error`` attribute is the wire code)
to HTTP statuses; the most specific class in an exception's MRO wins. Headers follow
from the status: ``WWW-Authenticate`` on 401 (RFC 6750 §3), ``Retry-After`` on 429 and
503, and ``Cache-Control: no-store`` / ``Pragma: no-cache`` on every error, which makes
the token endpoints' errors RFC 6749 §5.2 answers.

Errors that only the HTTP edge can detect (body too large, wrong media type, rate
limit, unknown route) are defined here, as part of the same tree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..exceptions import (  # re-exported: defined with the whole tree
    AuthenticationFailed,
    InvalidGrant,
    InvalidToken,
    KeyfobError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    StoreUnavailable,
    UnsupportedMediaType,
    UserError,
    UserExists,
    UserNotFound,
)
from ..oauth.errors import NO_STORE_HEADERS, InvalidRequest, UnsupportedGrantType, error_body
from ..transports.bearer import MissingCredentials, www_authenticate
from ..transports.cookies import InsecureCookieTransport
from ..transports.csrf import CSRFRejected
from .responses import json_response

__all__ = [
    "STATUS",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "UnsupportedMediaType",
    "error_response",
    "handle_exception",
    "handle_http_exception",
    "handle_keyfob_error",
    "status_for",
]

logger = logging.getLogger("keyfob.server")


#: HTTP status of each error class. Token-endpoint errors are 400 per RFC 6749 §5.2
#: (``invalid_grant`` included: a wrong password is an invalid grant, not a failed client
#: authentication, which alone would be 401); refused access tokens are 401 per RFC 6750.
STATUS: Mapping[type[KeyfobError], int] = {
    StoreUnavailable: 503,
    RateLimited: 429,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    CSRFRejected: 403,
    PermissionDenied: 403,
    InsecureCookieTransport: 400,
    InvalidRequest: 400,
    UnsupportedGrantType: 400,
    InvalidGrant: 400,
    AuthenticationFailed: 400,
    UserExists: 409,
    UserNotFound: 404,
    UserError: 400,
    NotFound: 404,
    InvalidToken: 401,
    KeyfobError: 500,
}

_REASONS = {404: ("not_found", "no such route"), 405: ("method_not_allowed", "")}


def status_for(exc: KeyfobError) -> int:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500  # pragma: no cover - KeyfobError is in the table


def error_response(exc: KeyfobError, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON answer for ``exc``, with the headers its status calls for."""
    status = status_for(exc)
    out = dict(NO_STORE_HEADERS)
    if status >= 500 and not isinstance(exc, StoreUnavailable):
        # Internal details stay in the log.
        logger.error("internal error: %s: %s", type(exc).__name__, exc.description)
        return json_response(error_body("server_error", "internal error"), 500, out)
    if isinstance(exc, StoreUnavailable | RateLimited):
        out["Retry-After"] = str(max(1, int(exc.retry_after)))
    if isinstance(exc, StoreUnavailable):
        logger.warning("store unavailable: %s", exc.description)
    if isinstance(exc, InvalidToken):
        if isinstance(exc, MissingCredentials):
            out["WWW-Authenticate"] = www_authenticate()
        else:
            out["WWW-Authenticate"] = www_authenticate(error=exc.error, description=exc.description)
    out.update(headers or {})
    return json_response(error_body(exc.error, exc.description), status, out)


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
    """Anything else: a JSON 500 that says nothing about the cause (it is logged)."""
    return json_response(error_body("server_error", "internal error"), 500, dict(NO_STORE_HEADERS))
