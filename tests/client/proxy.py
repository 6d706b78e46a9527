"""A counting HTTP relay in front of a real keyfob: the server side of the client tests.

It forwards every request to the target and counts them per path, so a test knows how
many refreshes reached the server — not how many the client thinks it sent. It can also
answer the next requests to a path itself (a 503 with ``Retry-After``: a token endpoint
that is briefly unavailable), recording the body each of them carried.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

__all__ = ["CountingProxy"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass(frozen=True)
class _Refusal:
    status: int
    headers: dict[str, str]
    body: bytes


class CountingProxy:
    """``with CountingProxy(server.url) as proxy: proxy.url, proxy.count("/auth/refresh")``"""

    def __init__(self, target: str) -> None:
        self.target = target
        self.counts: Counter[str] = Counter()
        self.bodies: dict[str, list[bytes]] = {}
        #: (path, the request line, headers and body as text) of every request seen.
        self.wire: list[tuple[str, str]] = []
        self._refusals: dict[str, list[_Refusal]] = {}
        self._mutex = threading.Lock()
        self._http = httpx.Client(base_url=target, timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def count(self, path: str) -> int:
        with self._mutex:
            return self.counts[path]

    def refuse_next(self, path: str, times: int, status: int = 503, retry_after: str = "1") -> None:
        """Answer the next ``times`` requests to ``path`` with ``status`` (not forwarded)."""
        body = b'{"error": "temporarily_unavailable", "error_description": "try again"}'
        headers = {"Retry-After": retry_after, "Content-Type": "application/json"}
        with self._mutex:
            self._refusals.setdefault(path, []).extend([_Refusal(status, headers, body)] * times)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        path = handler.path.split("?")[0]
        with self._mutex:
            self.counts[path] += 1
            self.bodies.setdefault(path, []).append(body)
            text = f"{handler.requestline}\n{handler.headers}\n{body.decode(errors='replace')}"
            self.wire.append((path, text))
            refusals = self._refusals.get(path)
            refusal = refusals.pop(0) if refusals else None
        if refusal is not None:
            self._reply(handler, refusal.status, list(refusal.headers.items()), refusal.body)
            return
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP]
        answer = self._http.request(handler.command, handler.path, headers=headers, content=body)
        forwarded = [
            (k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP_BY_HOP
        ]
        self._reply(handler, answer.status_code, forwarded, answer.content)

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        handler.send_response(status)
        for name, value in headers:
            if name.lower() != "content-encoding":
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_DELETE = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test output is for failures

        return Handler
