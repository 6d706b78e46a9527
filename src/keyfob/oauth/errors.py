"""Any exception as an HTTP error answer, as data: the one renderer every edge wraps.

:func:`render_error` turns an exception into ``(status, body, headers)``; the server
and each framework integration only put that triple into their own response type, so
they cannot disagree. The HTTP facts live on the exception classes
(:mod:`keyfob.exceptions`): ``status_code``, the wire code ``error``, the
``WWW-Authenticate`` challenge and ``retry_after``. Every answer is JSON
``{"error", "error_description"}`` (RFC 6749 §5.2) and is never cached.

One logging rule for every edge: a keyfob error that becomes a 5xx is logged here,
once (an outage with a ``retry_after`` — ``StoreUnavailable``, ``IssuerUnavailable`` — as
a warning, anything else as an error with its traceback). An exception that is not a
keyfob error is a bug; the edge that caught it logs its traceback, so it is not logged
here a second time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Final, NamedTuple

# The two "X as X" lines only serve server modules that still import these names from
# here (requests, routes_auth, routes_oauth): their home is keyfob.exceptions.
from ..exceptions import InvalidRequest as InvalidRequest
from ..exceptions import KeyfobError
from ..exceptions import UnsupportedGrantType as UnsupportedGrantType
from ..transports.bearer import www_authenticate

__all__ = ["NO_STORE_HEADERS", "RenderedError", "error_body", "render_error"]

logger = logging.getLogger("keyfob")

#: Token responses, successful or not, must not be cached (RFC 6749 §5.1).
NO_STORE_HEADERS: Final[Mapping[str, str]] = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
_NOT_ALLOWED: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class RenderedError(NamedTuple):
    """An error answer as data: what an edge puts into its framework's response."""

    status: int
    body: dict[str, str]
    headers: dict[str, str]


def error_body(error: str, description: str) -> dict[str, str]:
    """The JSON body of an error: ``error`` and an RFC-safe ``error_description``."""
    return {"error": error, "error_description": _NOT_ALLOWED.sub("'", description)}


def render_error(exc: BaseException) -> RenderedError:
    """The answer to ``exc``: its status, JSON body and headers.

    ``Cache-Control: no-store`` and ``Pragma: no-cache`` always; the class's
    ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3); ``Retry-After`` when the
    client may retry. A 5xx without ``retry_after``, and any exception that is
    not a :class:`~keyfob.exceptions.KeyfobError`, is a bare 500 ``server_error``:
    internal details stay in the log.
    """
    headers = dict(NO_STORE_HEADERS)
    if not isinstance(exc, KeyfobError):
        return RenderedError(500, error_body("server_error", "internal error"), headers)
    # An outage that says when to come back (a store, an issuer's keys) is a 503 the client
    # may retry; any other 5xx is a bug, answered without details.
    if exc.status_code >= 500 and exc.retry_after is None:
        logger.error("internal error: %s: %s", type(exc).__name__, exc.description, exc_info=exc)
        return RenderedError(500, error_body("server_error", "internal error"), headers)
    if exc.status_code >= 500:
        logger.warning("%s: %s", type(exc).__name__, exc.description)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(exc.retry_after)))
    challenge = exc.challenge()
    if challenge is not None and exc.auth_scheme == "Basic":
        # RFC 7617: the realm is the only parameter; the error is in the body.
        headers["WWW-Authenticate"] = 'Basic realm="keyfob"'
    elif challenge is not None:
        headers["WWW-Authenticate"] = www_authenticate(
            error=challenge.get("error"),
            description=challenge.get("error_description"),
            scope=challenge.get("scope"),
        )
    return RenderedError(exc.status_code, error_body(exc.error, exc.description), headers)
