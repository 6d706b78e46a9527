"""Fixtures for the interop tests: third-party OAuth 2.0 / OpenID Connect clients against a
real ``keyfob serve`` process, with a person signing in through real Chromium.

One server per test module (short access tokens, so refreshes come within seconds), one
headless Chromium per module (Debian's ``/usr/bin/chromium`` driven by Playwright), and
a loopback HTTP server standing in for the client's redirect URI, the way a native app
receives the authorization response (RFC 8252 §7.3). Clients and the account are made
the way an operator does it: ``keyfob clients add`` and ``keyfob users add`` in
subprocesses on the server's store. Without Chromium or Playwright the tests are skipped,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ..browser.conftest import CHROMIUM, CHROMIUM_ARGS
from ..server.uvicorn_process import UvicornProcess
from ..services import unavailable

#: The one account the tests sign in with.
USERNAME = "interop-alice"
PASSWORD = "correct horse battery staple"
#: The scopes the deployment offers (KEYFOB_SCOPES).
SCOPES = "openid profile read write"
#: How long a browser step may wait for a page (bounded, against hangs).
PAGE_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Keyfob:
    """A running ``keyfob serve`` and what the tests need to know about it."""

    process: UvicornProcess
    user_id: str

    @property
    def issuer(self) -> str:
        return self.process.url

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run ``keyfob ARGS`` on the server's store; its stdout."""
        return run_cli(self.process, *args, stdin=stdin)

    def add_client(self, name: str, *options: str) -> tuple[str, str | None]:
        """``keyfob clients add NAME OPTIONS``: the client id and the secret (None for a
        public client)."""
        lines = dict(
            line.split(": ", 1) for line in self.cli("clients", "add", name, *options).splitlines()
        )
        return lines["client_id"], lines.get("client_secret")

    def metadata(self) -> dict[str, Any]:
        """The RFC 8414 authorization-server metadata, as a client fetches it."""
        res = requests.get(self.issuer + "/.well-known/oauth-authorization-server", timeout=10)
        assert res.status_code == 200, res.text
        document: dict[str, Any] = res.json()
        return document

    def openid_configuration(self) -> dict[str, Any]:
        """The OpenID Connect Discovery document."""
        res = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=10)
        assert res.status_code == 200, res.text
        document: dict[str, Any] = res.json()
        return document


def run_cli(process: UvicornProcess, *args: str, stdin: str | None = None) -> str:
    """Run ``keyfob ARGS`` on the store of ``process``; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "keyfob.cli", *args],
        env=process.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"keyfob {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def access_ttl() -> int:
    """The server's access-token lifetime in seconds: short, so that a client's own
    refresh of an expired token comes within seconds. A module may override it."""
    return 3


@pytest.fixture(scope="module")
def keyfob(tmp_path_factory: pytest.TempPathFactory, access_ttl: int) -> Iterator[Keyfob]:
    """``keyfob serve`` (the real command) on 127.0.0.1 with one account."""
    directory = tmp_path_factory.mktemp("keyfob")
    settings = {"KEYFOB_ACCESS_TTL": f"{access_ttl}s", "KEYFOB_SCOPES": SCOPES}
    with UvicornProcess(directory, serve=True, env=settings) as process:
        created = run_cli(process, "users", "add", USERNAME, "--password-stdin", stdin=PASSWORD)
        # "created user NAME (id ID)"
        user_id = created.rsplit("(id ", 1)[1].rstrip().rstrip(")")
        yield Keyfob(process=process, user_id=user_id)
    # Tokens are never logged by the server, not even in its access log.
    assert "kfrt_" not in process.output()


class Loopback:
    """A loopback HTTP server playing the client's redirect URI: it records each request
    and answers with a short page, as a native app's loopback listener does."""

    def __init__(self) -> None:
        received = self.received = list[str]()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path not in ("/callback", "/signed-out"):
                    self.send_error(404)  # the browser's own requests, such as /favicon.ico
                    return
                received.append(self.path)
                body = b"<!doctype html><title>Done</title><p>You may close this window."
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``received`` instead."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/signed-out"

    def last(self, before: int) -> str:
        """The one request received since there were ``before``, as a full URL."""
        assert len(self.received) == before + 1, self.received
        return f"http://127.0.0.1:{self.port}{self.received[-1]}"


@pytest.fixture(scope="module")
def loopback() -> Iterator[Loopback]:
    receiver = Loopback()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), one per module."""
    if not CHROMIUM.exists():
        unavailable("Chromium is not installed: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed: pip install playwright")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def sign_in(browser: Any, loopback: Loopback, authorization_url: str, *, consent: bool) -> str:
    """A person opens ``authorization_url`` in a fresh browser, signs in with the login
    form and, when ``consent``, allows the client on the consent page. Returns the URL
    the browser was redirected to, as the loopback listener received it."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        before = len(loopback.received)
        page.goto(authorization_url)
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        if consent:
            page.get_by_role("button", name="Allow").click()
        page.wait_for_url(lambda url: url.startswith(loopback.redirect_uri + "?"))
        received = loopback.last(before)
        assert received == page.url
        return received
    finally:
        context.close()


def visit(browser: Any, loopback: Loopback, url: str) -> str:
    """The browser goes to ``url``, which sends it to the loopback listener's post-logout
    URI; the URL it arrived at there."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        before = len(loopback.received)
        page.goto(url)
        page.wait_for_url(lambda url: url.startswith(loopback.post_logout_redirect_uri))
        received = loopback.last(before)
        assert received == page.url
        return received
    finally:
        context.close()


def query(url: str) -> dict[str, str]:
    """The query parameters of ``url``, each given once."""
    params = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in params.values()), params
    return {k: v[0] for k, v in params.items()}
