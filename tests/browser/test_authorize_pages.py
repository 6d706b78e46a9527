"""The authorization pages in a real headless Chromium against a real ``keyfob serve``
(fixtures in conftest.py): sign in, consent, and land on the client's redirect URI,
served here by a tiny HTTP server on another origin that receives the code."""

from __future__ import annotations

import base64
import hashlib
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest

from .conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

USERNAME = "page-alice"
PASSWORD = "correct horse battery staple"
VERIFIER = "browser-test-code-verifier-0123456789-abcdefghijklmnop"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")
PHONE = {"width": 375, "height": 667}


@dataclass
class Callback:
    """The client's side: a loopback redirect URI (RFC 8252 §7.3) and a cross-site page."""

    port: int
    keyfob: str
    requests: list[str] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def params(self) -> dict[str, list[str]]:
        assert self.received.wait(10), "the redirect never reached the client"
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.requests[-1]).query)


@pytest.fixture
def callback(keyfob_server: Server) -> Iterator[Callback]:
    state: dict[str, Callback] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            cb = state["cb"]
            if self.path.startswith("/callback"):
                cb.requests.append(self.path)
                cb.received.set()
                body = b"<!doctype html><title>client</title><p id=done>signed in</p>"
            else:  # a cross-site page that posts a login form to keyfob
                body = (
                    "<!doctype html><title>attacker</title>"
                    f'<form method="post" action="{cb.keyfob}">'
                    '<input name="step" value="login"><input name="csrf_token" value="x">'
                    f'<input name="username" value="{USERNAME}">'
                    f'<input name="password" value="{PASSWORD}">'
                    '<button id="go" type="submit">go</button></form>'
                ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["cb"] = Callback(port=server.server_address[1], keyfob="")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["cb"]
    finally:
        server.shutdown()
        server.server_close()


def setup(server: Server, callback: Callback, *extra: str) -> str:
    """Register the user and the client; the authorization URL."""
    registered = httpx.post(
        server.url + "/auth/register",
        json={"username": USERNAME, "password": PASSWORD},
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    server.cli(
        "clients",
        "add",
        "Photo Printer",
        "--client-id",
        "printer",
        "--auth-method",
        "none",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--scope",
        "openid",
        "--scope",
        "profile",
        *extra,
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "printer",
            "redirect_uri": callback.redirect_uri,
            "scope": "openid profile",
            "state": "state-42",
            "code_challenge": CHALLENGE.decode(),
            "code_challenge_method": "S256",
            "nonce": "nonce-7",
        }
    )
    url = f"{server.url}/oauth/authorize?{query}"
    callback.keyfob = url
    return url


def watch(page: Any) -> list[str]:
    """Collect CSP violations and script errors a page reports."""
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if "Content Security Policy" in msg.text or "Refused to" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def exchange(server: Server, callback: Callback, code: str) -> dict[str, Any]:
    """The client's token request with the code it received (RFC 6749 §4.1.3)."""
    response = httpx.post(
        server.url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback.redirect_uri,
            "client_id": "printer",
            "code_verifier": VERIFIER,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def test_sign_in_consent_and_the_code_reaches_the_client(
    keyfob_server: Server, callback: Callback, browser: Any
) -> None:
    from playwright.sync_api import expect

    url = setup(keyfob_server, callback)
    page = browser.new_page()
    problems = watch(page)
    page.goto(url)
    expect(page).to_have_title("Sign in · keyfob")
    expect(page.get_by_text("Photo Printer")).to_be_visible()

    # A wrong password: the login page again, with an alert.
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value(USERNAME)
    assert callback.requests == []

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Allow access?")).to_be_visible()
    expect(page.locator("li[data-scope='openid']")).to_be_visible()
    expect(page.locator("li[data-scope='profile']")).to_be_visible()
    page.get_by_role("button", name="Allow").click()

    params = callback.params()
    expect(page.locator("#done")).to_have_text("signed in")
    assert params["state"] == ["state-42"]
    assert params["iss"] == [keyfob_server.url]
    assert problems == []
    tokens = exchange(keyfob_server, callback, params["code"][0])
    assert tokens["refresh_token"].startswith("kfrt_")
    assert tokens["scope"] == "openid profile"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "printer"


def test_deny_sends_access_denied_to_the_client(
    keyfob_server: Server, callback: Callback, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    problems = watch(page)
    page.goto(setup(keyfob_server, callback))
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("button", name="Deny")).to_be_visible()
    page.get_by_role("button", name="Deny").click()
    params = callback.params()
    assert params["error"] == ["access_denied"]
    assert params["state"] == ["state-42"]
    assert "code" not in params
    assert problems == []


def test_a_first_party_client_skips_consent(
    keyfob_server: Server, callback: Callback, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(setup(keyfob_server, callback, "--first-party"))
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    params = callback.params()
    assert params["state"] == ["state-42"]
    assert "code" in params


def test_a_cross_site_form_post_is_refused(
    keyfob_server: Server, callback: Callback, browser: Any
) -> None:
    """A page of another origin posts the login form to keyfob: the SameSite=Lax browser
    cookie stays behind and the CSRF check refuses, even though the browser has visited
    the authorization page before."""
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    page.goto(setup(keyfob_server, callback))  # the browser now has its keyfob cookie
    page.goto(f"http://127.0.0.1:{callback.port}/attack")
    page.click("#go")
    expect(page.get_by_role("heading")).to_have_text("This form was not accepted")
    assert callback.requests == []
    context.close()


def test_the_pages_work_on_a_phone(keyfob_server: Server, callback: Callback, browser: Any) -> None:
    """At 375x667 with touch: everything visible, no sideways scrolling, a sensible tab
    order, and the CSP reports nothing."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    problems = watch(page)
    page.goto(setup(keyfob_server, callback))

    def fits() -> None:
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"horizontal scroll: {width}"

    for name in ("Username", "Password"):
        expect(page.get_by_label(name)).to_be_in_viewport()
    expect(page.get_by_role("button", name="Sign in")).to_be_in_viewport()
    fits()
    # Focus starts in the username field and Tab walks the form in reading order.
    assert page.evaluate("() => document.activeElement.id") == "username"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "password"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Sign in"
    # Touch targets are at least 44 px high.
    box = page.get_by_role("button", name="Sign in").bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] <= PHONE["width"]

    page.get_by_label("Username").tap()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").tap()
    expect(page.get_by_role("button", name="Allow")).to_be_in_viewport()
    expect(page.get_by_role("button", name="Deny")).to_be_in_viewport()
    fits()
    page.get_by_role("button", name="Allow").tap()
    assert "code" in callback.params()
    assert problems == []
    context.close()
