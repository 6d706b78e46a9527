"""A webhook receiver for the tests: a tiny HTTP server on 127.0.0.1 in a thread.

It records every request (headers and body) and answers with the next status of its
script (the last one repeats). ``hang()`` makes it hold every request until
``release()``; every wait is bounded, and stopping it releases whatever it holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

#: The longest a held request is held, so that a test that forgets to release ends.
HOLD_LIMIT = 60.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """``with Receiver([500, 200]) as r: ... r.url ... r.wait_for(2)``"""

    def __init__(self, statuses: Sequence[int] = (200,)) -> None:
        self.statuses = list(statuses)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._held = threading.Event()
        self._held.set()
        self.holding = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._changed:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    index = len(receiver.received) - 1
                    status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                    receiver.holding += 1
                    receiver._changed.notify_all()
                try:
                    receiver._held.wait(HOLD_LIMIT)
                finally:
                    with receiver._changed:
                        receiver.holding -= 1
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # keyfob gave up on this attempt and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/keyfob"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def hang(self) -> None:
        """Hold every request from now on, without answering, until :meth:`release`."""
        self._held.clear()

    def release(self) -> None:
        self._held.set()

    def wait_for(
        self, count: int, *, timeout: float = 30.0, where: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        """Wait (bounded) until ``count`` requests (matching ``where``) came; return them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self.received if where is None or where(r)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the receiver got {len(found)} of {count} requests in {timeout} s"
                    )
                self._changed.wait(left)
