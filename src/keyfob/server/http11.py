"""The HTTP/1.1 protocol ``keyfob serve`` runs: uvicorn's httptools protocol, with limits.

uvicorn's httptools protocol bounds neither the size of a request head nor the time a
client may take to send it: a 1 MB header is accepted, a 100 MB one costs seconds of CPU
and hundreds of MB while httptools concatenates it, and a client that sends one header
line per second (slowloris), or connects and sends nothing, holds its connection
forever. uvicorn's h11 protocol has a head limit but no timeout, and costs 31% more CPU
per refresh; granian 15% (docs/security.md, "Request heads"). So keyfob keeps httptools
and adds, per connection:

- **head size** (``max_head_size``): beyond it, 431 and the connection is closed. The
  bytes of each read that starts or continues a head are counted before parsing, so
  httptools never holds more than the limit plus one read; a head that completes in
  the read that crossed the limit is measured exactly (request line and header lines)
  before any app sees it. A head within the limit costs one comparison;
- **read timeout** (``read_timeout``): a request, head and body, must arrive within
  this time of its first byte (and a new connection must bring one within it);
  otherwise 408 (or a silent close when nothing was sent). No timer runs for a request
  that arrives in one read, as every keyfob call does: the timer is armed only when a
  read ends inside a request, so the refresh path pays nothing;
- keyfob's JSON error bodies, with ``Connection: close``, for the answers the protocol
  gives itself: 400 for a malformed request, 408, 431, and the 503 of uvicorn's
  ``limit_concurrency`` cap, with ``Retry-After``.

uvicorn builds one protocol per connection with ``(config, server_state, app_state,
_loop)``; :func:`protocol_factory` binds the limits (a picklable ``functools.partial``,
so ``--workers`` processes get them too).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..oauth.errors import NO_STORE_HEADERS, error_body
from ..settings import Settings

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
    from uvicorn.server import ServerState

__all__ = ["ConnectionLimits", "LimitedHttpToolsProtocol", "protocol_factory"]

#: Seconds a client refused by the concurrency cap is asked to wait.
BUSY_RETRY_AFTER: Final = 1


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may cost: the largest request head, and how long a request
    may take to arrive."""

    max_head_size: int = 32 * 1024
    read_timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(max_head_size=settings.max_head_size, read_timeout=settings.read_timeout)


def protocol_factory(limits: ConnectionLimits) -> Callable[..., asyncio.Protocol]:
    """What ``uvicorn.run(http=...)`` takes: connections with ``limits``."""
    return functools.partial(LimitedHttpToolsProtocol, limits=limits)


def _answer(status: int, error: str, description: str, extra: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, with a keyfob JSON body."""
    body = json.dumps(error_body(error, description), separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        **{name.lower(): value for name, value in NO_STORE_HEADERS.items()},
        **extra,
        "connection": "close",
    }
    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())
    return STATUS_LINE[status] + head + b"\r\n" + body


# Built once: the answers never vary.
_MALFORMED: Final = _answer(400, "invalid_request", "the request is not valid HTTP/1.1", {})
_TIMEOUT: Final = _answer(408, "invalid_request", "the request did not arrive in time", {})
_TOO_LARGE: Final = _answer(431, "invalid_request", "the request head is too large", {})
_BUSY_BODY: Final = json.dumps(
    error_body("temporarily_unavailable", "the server is busy; try again shortly"),
    separators=(",", ":"),
).encode()


async def _busy(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """uvicorn's concurrency-cap answer (``service_unavailable``), as keyfob's JSON 503."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BUSY_BODY)).encode()),
        (b"retry-after", str(BUSY_RETRY_AFTER).encode()),
        *((name.lower().encode(), value.encode()) for name, value in NO_STORE_HEADERS.items()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over the size limit."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size limit and a read timeout."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits = ConnectionLimits(),
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        #: Bytes received since the current head began (0 outside a head).
        self._head_bytes = 0
        #: A request head has begun and not ended.
        self._in_head = False
        #: A request has begun and not fully arrived (head or body).
        self._in_request = False
        self._read_timer: asyncio.TimerHandle | None = None
        #: The answer a parser callback asked for when it stopped the parser.
        self._refusal: bytes | None = None

    # the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends anything would otherwise stay open forever.
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head or not self._in_request:
            # This read continues a head or starts one. A read that completes a head may
            # carry the body too, so the size is judged only while the head is open.
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head and self._head_bytes > self.limits.max_head_size:
            self._refuse(_TOO_LARGE)
        elif self._in_request and self._read_timer is None:
            self._arm_read_timer()

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._in_request = True

    def on_headers_complete(self) -> None:
        # _head_bytes is the head plus whatever came after it in the same read: only a
        # count over the limit needs the exact size.
        if self._head_bytes > self.limits.max_head_size and self._head_size() > (
            self.limits.max_head_size
        ):
            self._refusal = _TOO_LARGE
            # Stops the parser before any app runs; uvicorn's data_received catches the
            # error and calls send_400_response, which answers the refusal.
            raise _HeadTooLarge
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_request = False
        self._disarm_read_timer()
        super().on_message_complete()

    # answers of the protocol's own

    def send_400_response(self, msg: str) -> None:
        self._refuse(self._refusal or _MALFORMED)

    def _head_size(self) -> int:
        """The size of the head just parsed: request line and header lines."""
        # "METHOD " + url + " HTTP/1.1\r\n", "name: value\r\n" each, and the blank line.
        size = len(self.url) + 20
        for name, value in self.headers:
            size += len(name) + len(value) + 4
        return size

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # uvicorn picks its plain-text ``service_unavailable`` app when the
        # ``limit_concurrency`` cap is reached; keyfob answers that in JSON.
        super()._start_asgi_task(cycle, _busy if app is service_unavailable else app)

    def _refuse(self, answer: bytes) -> None:
        """Write ``answer`` (which says ``Connection: close``) and close."""
        self._disarm_read_timer()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.write(answer)
        elif not self._in_head and not cycle.response_started:
            # The request whose body is being read is this cycle's, and the refusal is
            # its answer: the app then sees the client go away, as on a lost connection.
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.write(answer)
        # Otherwise an earlier pipelined request is still being answered, and its answer
        # must come first: close without one.
        self.transport.close()

    # the read timer

    def _arm_read_timer(self) -> None:
        self._read_timer = self.loop.call_later(self.limits.read_timeout, self._read_timed_out)

    def _disarm_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            # An answer is on its way (a slow next request behind it): let it finish,
            # then close instead of waiting for the rest.
            cycle.keep_alive = False
            return
        if not self._in_request:
            # Connected and sent nothing: nobody to answer.
            self.transport.close()
            return
        self._refuse(_TIMEOUT)
