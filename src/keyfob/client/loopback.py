"""The loopback redirect of a native app (RFC 8252 §7.3): a one-shot HTTP listener on
``127.0.0.1`` and a port the OS picks, for the browser to bring the code back to.

Bound to the loopback IP literal, not ``localhost`` (RFC 8252 §8.3: a name may resolve
elsewhere, or to an interface other programs can reach). Only a ``GET`` of the exact
redirect path counts, and only the first one: anything else is a 404 and changes
nothing, so a stray favicon request or a second visit cannot replace the answer. The
page it shows says only whether to go back to the program; it has no script, no
external resource and sends no ``Referer``, so the code in its URL goes nowhere else.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from .authorization import MAX_REDIRECT_QUERY
from .errors import AuthorizationFailed

__all__ = ["LoopbackRedirect"]

_PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title><body><h1>{title}</h1><p>{text}</p></body></html>
"""
_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class LoopbackRedirect:
    """``with LoopbackRedirect() as redirect:`` listen; ``redirect.redirect_uri`` to
    register with the authorization request; ``redirect.wait(seconds)`` for the query the
    browser brought back."""

    def __init__(self, path: str = "/callback") -> None:
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError("the redirect path must be an absolute path without query")
        self.path = path
        self._query: str | None = None
        self._arrived = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def redirect_uri(self) -> str:
        if self._server is None:
            raise RuntimeError("the listener is not started: use it in a with block")
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def __enter__(self) -> LoopbackRedirect:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how soon __exit__'s shutdown is noticed
            name="keyfob-loopback-redirect",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait(self, timeout: float) -> str:
        """The redirect's query string; :class:`AuthorizationFailed` (``timeout``) if no
        browser came back within ``timeout`` seconds."""
        if not self._arrived.wait(timeout):
            raise AuthorizationFailed(
                "timeout", f"no answer from the browser within {timeout:g} seconds"
            )
        assert self._query is not None
        return self._query

    def _accept(self, query: str) -> bool:
        with self._lock:
            if self._query is not None:
                return False
            self._query = query
        self._arrived.set()
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "keyfob-client"
            sys_version = ""

            def do_GET(self) -> None:
                target = urlsplit(self.path)
                if target.path != listener.path or len(target.query) > MAX_REDIRECT_QUERY:
                    self._answer(404, "Not found", "This address only takes the sign-in answer.")
                elif not listener._accept(target.query):
                    self._answer(409, "Already answered", "You can close this tab.")
                elif "error=" in target.query:
                    self._answer(200, "Sign-in not completed", "Return to the program.")
                else:
                    self._answer(200, "Signed in", "You can close this tab now.")

            def _answer(self, status: int, title: str, text: str) -> None:
                body = _PAGE.format(title=title, text=text).encode()
                self.send_response(status)
                for name, value in _HEADERS.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # The request line carries the code: never print it.
                return

        return Handler
