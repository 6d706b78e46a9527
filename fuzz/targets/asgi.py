"""The whole auth server, in process: ``create_app`` on the memory store, driven over
ASGI with fuzzed methods, paths, headers and bodies against the ``/auth`` and
``/oauth`` routes (and whatever else a fuzzed path reaches).

Contract (spec §4, "bad input always gets a clear 4xx JSON error, never a 5xx"): every
request gets exactly one complete answer and no exception escapes the app; no answer
is a 5xx and nothing is logged as an error; every 4xx (but to ``HEAD``) is a JSON object
with string ``error`` and ``error_description``, never cached; a 401 carries a
``WWW-Authenticate`` challenge (Bearer, or Basic at the OAuth endpoints) and a 429 a
``Retry-After``.

Requests look like what uvicorn hands an app: the request target is visible ASCII (the
HTTP parsers refuse anything else with their own 400), header names are lower-case
tokens, values
hold no CR, LF or NUL and no surrounding whitespace, and ``path`` is the
percent-decoded ``raw_path``. Each request that needs real credentials gets a fresh
session (logged in through the manager, past the HTTP rate limits), so a valid,
rotated or replayed refresh token and a valid access token are one choice away.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote, unquote

from starlette.types import Message

from keyfob.core.models import DeviceInfo, TokenPair
from keyfob.server import create_app
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from ..data import Reader, Writer

__all__ = ["check", "seeds"]

USERNAME = "alice"
PASSWORD = "correct horse battery staple"

_METHODS = ("POST", "GET", "DELETE", "HEAD", "OPTIONS", "PUT", "fuzzed")
_PATHS = (
    "/auth/refresh",
    "/auth/login",
    "/auth/register",
    "/auth/logout",
    "/auth/logout-all",
    "/auth/me",
    "/auth/sessions",
    "/auth/sessions/{sid}",
    "/oauth/token",
    "/auth/login/",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/",
    "/static/keyfob.js",
    "fuzzed",
)
_SCHEMES = ("https", "http")
_HOSTS = ("testserver", "localhost:8000", "evil.example", "fuzzed")
_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "fuzzed")
_REFRESH = ("valid", "replayed", "revoked", "garbage", "fuzzed")
_ACCESS = ("valid", "of_revoked", "garbage", "fuzzed")
_ORIGINS = ("https://testserver", "http://localhost:8000", "https://evil.example", "fuzzed")
_BODIES = ("absent", "json", "form", "raw")
_JSON_NAMES = ("username", "password", "transport", "refresh_token", "grant_type", "fuzzed")
_JSON_VALUES = (
    "alice",
    "correct horse battery staple",
    "cookie",
    "body",
    "refresh",
    "refresh_token",
    "null",
    "number",
    "list",
    "fuzzed",
)
_LENGTHS = ("exact", "absent", "huge")
_COOKIE_NAMES = ("__Secure-keyfob_refresh", "__Host-keyfob_refresh", "keyfob_refresh")

_SETTINGS = FAST_SETTINGS.replace(
    issuer="https://testserver", allowed_origins=("http://localhost:8000",)
)


class _Server:
    """The app with its lifespan running on a private event loop, for the whole process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = create_app(_SETTINGS, MemoryStore(), FrozenClock())
        self.manager = self.app.state.manager
        self.stack = AsyncExitStack()
        self.run(self.stack.enter_async_context(self.app.router.lifespan_context(self.app)))
        self.run(self.manager.register(USERNAME, PASSWORD))
        atexit.register(self.close)

    def close(self) -> None:
        # The lifespan's background jobs end with it, before the loop closes.
        self.run(self.stack.aclose())
        self.loop.close()

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def login(self) -> TokenPair:
        device = DeviceInfo(user_agent="fuzz", ip="127.0.0.1")
        return self.run(self.manager.login(USERNAME, PASSWORD, device=device))  # type: ignore[no-any-return]


_server: _Server | None = None


def _the_server() -> _Server:
    global _server
    if _server is None:
        _server = _Server()
    return _server


class _ErrorLog(logging.Handler):
    """Records what is logged at ERROR or above while a request runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Credentials:
    """A fresh session, made only when the request asks for one of its tokens."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self._pair: TokenPair | None = None

    @property
    def pair(self) -> TokenPair:
        if self._pair is None:
            self._pair = self.server.login()
        return self._pair

    def refresh_token(self, kind: str, r: Reader) -> str:
        if kind == "valid":
            return self.pair.refresh_token.value
        if kind == "replayed":
            # Rotated twice (a session of its own): the first token is now an older one,
            # which is reuse.
            first = self.server.login().refresh_token
            second = self.server.run(self.server.manager.refresh(first))
            self.server.run(self.server.manager.refresh(second.refresh_token))
            return first.value
        if kind == "revoked":
            token = self.server.login().refresh_token
            self.server.run(self.server.manager.logout(token))
            return token.value
        if kind == "garbage":
            return "kfrt_" + "A" * 93
        return _header_text(r, 160)

    def access_token(self, kind: str, r: Reader) -> str:
        if kind == "valid":
            return self.pair.access_token
        if kind == "of_revoked":
            pair = self.server.login()
            self.server.run(self.server.manager.logout(pair.refresh_token))
            return pair.access_token
        if kind == "garbage":
            return "eyJhbGciOiJub25lIn0.e30."
        return _header_text(r, 160)


def _header_text(r: Reader, max_length: int) -> str:
    """Text a server would hand over as a header value: Latin-1, no CR, LF or NUL, no
    surrounding whitespace (HTTP/1.1 parsers strip it)."""
    text = r.text(max_length).encode("latin-1", "replace").decode("latin-1")
    return "".join(c for c in text if c not in "\r\n\0").strip(" \t")


def _token_text(r: Reader, max_length: int) -> str:
    """A method or header name: an RFC 9110 token."""
    allowed = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(c for c in r.text(max_length) if c in allowed) or "X"


def _json_value(r: Reader, creds: _Credentials) -> object:
    choice = r.pick(_JSON_VALUES)
    if choice == "refresh":
        return creds.refresh_token(r.pick(_REFRESH), r)
    if choice == "null":
        return None
    if choice == "number":
        return r.integer(-(2**31), 2**31)
    if choice == "list":
        return [USERNAME]
    if choice == "fuzzed":
        return r.text(64)
    return choice


def _body(r: Reader, creds: _Credentials) -> bytes:
    kind = r.pick(_BODIES)
    if kind == "absent":
        return b""
    if kind == "raw":
        return r.raw(512)
    members: list[tuple[str, object]] = []
    for _ in range(r.integer(0, 5)):
        name = r.pick(_JSON_NAMES)
        members.append((r.text(16) if name == "fuzzed" else name, _json_value(r, creds)))
    if kind == "json":
        text = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in members) + "}"
        return text.encode("utf-8", "surrogatepass")
    pairs = "&".join(f"{_quote(k)}={_quote(str(v))}" for k, v in members)
    return pairs.encode("ascii")


def _quote(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _request(r: Reader, server: _Server) -> tuple[dict[str, Any], bytes]:
    creds = _Credentials(server)
    method = r.pick(_METHODS)
    if method == "fuzzed":
        method = _token_text(r, 12).upper()
    path = r.pick(_PATHS)
    if path == "fuzzed":
        raw_path = "".join(c for c in r.text(80) if " " < c < "\x7f" and c != "?") or "/"
    elif path == "/auth/sessions/{sid}":
        raw_path = "/auth/sessions/" + (creds.pair.session.sid if r.boolean() else "x%2F..")
    else:
        raw_path = path
    # HTTP/1.1 parsers (httptools, h11) accept only visible ASCII in the request target.
    query = "".join(c for c in r.text(40) if " " < c < "\x7f") if r.boolean() else ""
    scheme = r.pick(_SCHEMES)
    headers: list[tuple[str, str]] = []
    host = r.pick(_HOSTS)
    if r.boolean():
        headers.append(("host", _header_text(r, 40) if host == "fuzzed" else host))
    content_type = r.pick(_CONTENT_TYPES)
    if r.boolean():
        value = _header_text(r, 60) if content_type == "fuzzed" else content_type
        headers.append(("content-type", value))
    for _ in range(r.integer(0, 2)):  # zero, one or two cookies
        name = r.pick(_COOKIE_NAMES)
        headers.append(("cookie", f"{name}={creds.refresh_token(r.pick(_REFRESH), r)}"))
    for _ in range(r.integer(0, 2)):  # zero, one or two Authorization headers
        scheme_word = r.pick(("Bearer ", "bearer  ", "Basic ", ""))
        headers.append(("authorization", scheme_word + creds.access_token(r.pick(_ACCESS), r)))
    if r.boolean():
        origin = r.pick(_ORIGINS)
        headers.append(("origin", _header_text(r, 60) if origin == "fuzzed" else origin))
    if r.boolean():
        headers.append(("x-keyfob-csrf", r.pick(("1", "0", "true"))))
    if r.boolean():
        headers.append(("sec-fetch-site", r.pick(("same-origin", "cross-site"))))
    if r.boolean():
        headers.append(("access-control-request-method", "POST"))
    if r.boolean():
        headers.append((_token_text(r, 20).lower(), _header_text(r, 60)))
    body = _body(r, creds)
    length = r.pick(_LENGTHS)
    if length == "exact" and body:
        headers.append(("content-length", str(len(body))))
    elif length == "huge":
        headers.append(("content-length", "99999999"))
    elif body:
        headers.append(("transfer-encoding", "chunked"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("ascii"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443 if scheme == "https" else 80),
        "state": {},
    }
    return scope, body


def check(data: bytes) -> None:
    server = _the_server()
    r = Reader(data)
    scope, body = _request(r, server)
    chunks = [body[: len(body) // 2], body[len(body) // 2 :]] if body else [b""]
    inbox: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(3600)  # like a server: nothing more until the client leaves
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    errors = _ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        server.run(asyncio.wait_for(server.app(scope, receive, send), timeout=30))
    finally:
        root.removeHandler(errors)
    _check_answer(scope, sent, errors.records)


def _check_answer(
    scope: dict[str, Any], sent: list[Message], errors: list[logging.LogRecord]
) -> None:
    where = f"{scope['method']} {scope['path']!r}"
    assert not errors, f"{where} logged an error: {errors[0].getMessage()}"
    assert sent and sent[0]["type"] == "http.response.start", f"{where}: no answer"
    status = sent[0]["status"]
    body_messages = sent[1:]
    assert body_messages and all(m["type"] == "http.response.body" for m in body_messages)
    assert not body_messages[-1].get("more_body", False), f"{where}: the answer never ended"
    assert status < 500, f"{where} answered {status}"
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in sent[0]["headers"]}
    if status == 401:
        # RFC 6750 §3 for protected resources; RFC 6749 §5.2 for a client that failed
        # authentication at the OAuth endpoints (invalid_client, with the Basic scheme).
        scheme = "Basic " if scope["path"].startswith("/oauth/") else "Bearer "
        assert headers.get("www-authenticate", "").startswith(scheme), f"{where}: 401"
    if status == 429:
        assert headers.get("retry-after", "").isdigit(), f"{where}: 429 without Retry-After"
    if 400 <= status < 500 and scope["method"] != "HEAD":
        assert headers.get("content-type", "").startswith("application/json"), where
        assert "no-store" in headers.get("cache-control", ""), f"{where}: a cacheable error"
        error = json.loads(b"".join(m.get("body", b"") for m in body_messages))
        assert isinstance(error, dict), where
        assert isinstance(error.get("error"), str) and error["error"], where
        assert isinstance(error.get("error_description"), str), where


def seeds() -> list[bytes]:
    def request(method: str, path: str, content_type: str = "application/json") -> Writer:
        w = Writer().pick(_METHODS, method).pick(_PATHS, path).boolean(False)
        w.pick(_SCHEMES, "https").pick(_HOSTS, "testserver").boolean(True)
        w.pick(_CONTENT_TYPES, content_type).boolean(True)
        return w

    refresh_body = (
        request("POST", "/auth/refresh")
        .integer(0, 2, 0)  # no cookie
        .integer(0, 2, 0)  # no Authorization
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .pick(_BODIES, "json")
        .integer(0, 5, 1)
        .pick(_JSON_NAMES, "refresh_token")
        .pick(_JSON_VALUES, "refresh")
        .pick(_REFRESH, "valid")
        .pick(_LENGTHS, "exact")
    )
    refresh_cookie = (
        request("POST", "/auth/refresh")
        .integer(0, 2, 1)
        .pick(_COOKIE_NAMES, "__Secure-keyfob_refresh")
        .pick(_REFRESH, "replayed")
        .integer(0, 2, 0)
        .boolean(True)
        .pick(_ORIGINS, "https://testserver")
        .boolean(True)
        .pick(("1", "0", "true"), "1")
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .pick(_BODIES, "absent")
        .pick(_LENGTHS, "absent")
    )
    me = (
        request("GET", "/auth/me")
        .integer(0, 2, 0)
        .integer(0, 2, 1)
        .pick(("Bearer ", "bearer  ", "Basic ", ""), "Bearer ")
        .pick(_ACCESS, "valid")
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .pick(_BODIES, "absent")
        .pick(_LENGTHS, "absent")
    )
    login = (
        request("POST", "/auth/login")
        .integer(0, 2, 0)
        .integer(0, 2, 0)
        .boolean(True)
        .pick(_ORIGINS, "https://evil.example")
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .pick(_BODIES, "json")
        .integer(0, 5, 3)
        .pick(_JSON_NAMES, "username")
        .pick(_JSON_VALUES, "alice")
        .pick(_JSON_NAMES, "password")
        .pick(_JSON_VALUES, "correct horse battery staple")
        .pick(_JSON_NAMES, "transport")
        .pick(_JSON_VALUES, "cookie")
        .pick(_LENGTHS, "exact")
    )
    token = (
        request("POST", "/oauth/token", "application/x-www-form-urlencoded")
        .integer(0, 2, 0)
        .integer(0, 2, 0)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .boolean(False)
        .pick(_BODIES, "form")
        .integer(0, 5, 2)
        .pick(_JSON_NAMES, "grant_type")
        .pick(_JSON_VALUES, "refresh_token")
        .pick(_JSON_NAMES, "refresh_token")
        .pick(_JSON_VALUES, "refresh")
        .pick(_REFRESH, "valid")
        .pick(_LENGTHS, "exact")
    )
    return [w.build() for w in (refresh_body, refresh_cookie, me, login, token)]
