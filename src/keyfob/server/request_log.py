"""One JSON line per request, and the per-request numbers of :mod:`.metrics`.

:class:`RequestObserver` wraps the whole app (the hot routes too: it is called by
:class:`~.hot.KeyfobApp` itself, not installed as Starlette middleware, which would turn
the hot routes' shortcut off). Per request it keeps a :class:`RequestInfo` in a context
variable, which the handlers annotate (the user and session of a token answer, the error
a request ended with), and when the answer is sent it counts the request in the
:class:`~.metrics.Recorder` and writes one ``keyfob.request`` log record.

What a record holds is chosen field by field, never copied from the request: route
template (not the path: ``/auth/sessions/{sid}``), method, status, latency, request id,
client address, user id and sid where known, the error code. Headers, cookies, query
strings and bodies are never logged, so no token, password or cookie value can be.

Health and metrics endpoints are neither logged nor counted: load balancers and
Prometheus poll them every few seconds.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..exceptions import (
    CSRFRejected,
    InvalidRequest,
    KeyfobError,
    MalformedToken,
    RateLimited,
    SessionExpired,
    SessionNotFound,
    SessionRevoked,
    StoreError,
    StoreUnavailable,
    TokenReused,
)
from .metrics import REFRESH_ROUTE, Recorder

__all__ = [
    "QUIET_PATHS",
    "REQUEST_ID_HEADER",
    "RequestInfo",
    "RequestObserver",
    "current_request",
    "note_error",
    "note_session",
]

#: The logger of the per-request lines; its level switches the request log on and off.
request_logger = logging.getLogger("keyfob.request")

REQUEST_ID_HEADER: Final = "X-Request-ID"
_REQUEST_ID_KEY: Final = b"x-request-id"
# An incoming id is kept only if it is short and harmless in a log line and a header.
_SANE_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,64}")

#: Not logged, not counted (polled by load balancers and Prometheus).
QUIET_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


#: A hot route's handler, and how :mod:`.hot` answers with one (returning the status).
Endpoint = Callable[[Request], Awaitable[Response]]
Answer = Callable[[Endpoint, Scope, Receive, Send], Awaitable[int]]


@dataclass(slots=True)
class RequestInfo:
    """What the handlers learned about the request, for its log line and metrics."""

    user_id: str | None = None
    sid: str | None = None
    error: KeyfobError | None = None


_current: ContextVar[RequestInfo | None] = ContextVar("keyfob_request", default=None)


def current_request() -> RequestInfo | None:
    """The running request's info (None outside an observed request)."""
    return _current.get()


def note_session(user_id: str, sid: str) -> None:
    """Say whose session the running request is about (a token answer, a protected call)."""
    info = _current.get()
    if info is not None:
        info.user_id = user_id
        info.sid = sid


def note_error(exc: KeyfobError) -> None:
    """Say which error the running request is answered with."""
    info = _current.get()
    if info is not None:
        info.error = exc


def refresh_reason(exc: KeyfobError | None) -> str:
    """The reason class of a refused refresh (the ``reason`` label)."""
    # Most specific first: the classes below are subclasses of one another.
    for cls, name in _REASONS:
        if isinstance(exc, cls):
            return name
    return "other"


_REASONS: Final = (
    (MalformedToken, "malformed"),
    (SessionNotFound, "not_found"),
    (TokenReused, "reused"),
    (SessionRevoked, "revoked"),
    (SessionExpired, "expired"),
    (RateLimited, "rate_limited"),
    (CSRFRejected, "csrf"),
    (InvalidRequest, "bad_request"),
    (StoreUnavailable, "unavailable"),
)


class RequestObserver:
    """Times, counts and logs each HTTP request around the app (see the module doc)."""

    def __init__(self, recorder: Recorder | None, exact_paths: frozenset[str]) -> None:
        self.recorder = recorder
        #: Routes without path parameters that may be answered without routing.
        self.exact_paths = exact_paths

    async def hot(
        self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, answer: Answer
    ) -> None:
        """A hot route (refresh, token, ``/auth/me``: :mod:`.hot`), as cheaply as can be:
        ``answer`` returns the status, so without the request log nothing wraps ``send``."""
        if request_logger.isEnabledFor(logging.INFO):

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                await answer(endpoint, scope, receive, send)

            await self(scope, receive, send, app)
            return
        recorder = self.recorder
        if recorder is None:
            await answer(endpoint, scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        info = RequestInfo()
        token = _current.set(info)
        try:
            status = await answer(endpoint, scope, receive, send)
        finally:
            _current.reset(token)
            _count(recorder, scope["path"], status, time.perf_counter() - started, info)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        path: str = scope["path"]
        logging_on = request_logger.isEnabledFor(logging.INFO)
        if path in QUIET_PATHS or not (logging_on or self.recorder is not None):
            await app(scope, receive, send)
            return
        request_id = _request_id(scope) if logging_on else ""
        status = 500
        started = time.perf_counter()
        info = RequestInfo()
        token = _current.set(info)

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if request_id:
                    headers = list(message.get("headers", ()))
                    headers.append((_REQUEST_ID_KEY, request_id.encode("ascii")))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, observed_send)
        finally:
            _current.reset(token)
            elapsed = time.perf_counter() - started
            route = _route_template(scope, self.exact_paths)
            if self.recorder is not None:
                _count(self.recorder, route, status, elapsed, info)
            if logging_on:
                _log(scope, route, status, elapsed, info, request_id)


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == _REQUEST_ID_KEY:
            if _SANE_REQUEST_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return secrets.token_hex(8)


def _route_template(scope: Scope, exact_paths: frozenset[str]) -> str:
    """The matched route's template; ``unmatched`` for a path no route took (unknown
    paths would each make a label value and a log field an attacker chooses)."""
    route = scope.get("route")
    if route is not None:
        template = getattr(route, "path", None)
        if isinstance(template, str):
            return template or "/"
    path: str = scope["path"]
    # The hot routes, answered without routing, have no parameters: path = template.
    return path if path in exact_paths else "unmatched"


def _count(recorder: Recorder, route: str, status: int, elapsed: float, info: RequestInfo) -> None:
    # The common case (an answer without error) is two dictionary lookups and a few
    # integer updates; everything by label is counted only for errors.
    stats = recorder.routes.get(route)
    if stats is None:
        stats = recorder.route(route)
    stats.observe(status, elapsed)
    error = info.error
    if route == REFRESH_ROUTE and status != 200:
        recorder.count("keyfob_refreshes_total", ("invalid", refresh_reason(error)))
    if error is None:
        return
    if isinstance(error, RateLimited):
        recorder.count("keyfob_rate_limited_total", (route,))
    elif isinstance(error, StoreError):
        kind = "unavailable" if isinstance(error, StoreUnavailable) else "error"
        recorder.count("keyfob_store_errors_total", (kind,))


def _log(
    scope: Scope, route: str, status: int, elapsed: float, info: RequestInfo, request_id: str
) -> None:
    client = scope.get("client")
    fields: dict[str, object] = {
        "event": "request",
        "request_id": request_id,
        "method": scope["method"],
        "route": route,
        "status": status,
        "latency_ms": round(elapsed * 1000, 3),
        "client": client[0] if client else None,
    }
    if info.user_id is not None:
        fields["user_id"] = info.user_id
        fields["sid"] = info.sid
    if info.error is not None:
        fields["error"] = info.error.error
    request_logger.info(
        "%s %s %d %.1fms", scope["method"], fields["route"], status, elapsed * 1000,
        extra={"keyfob": fields},
    )  # fmt: skip
