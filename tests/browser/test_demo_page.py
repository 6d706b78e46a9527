"""The demo page in a real headless Chromium against a real ``keyfob serve`` process
(fixtures in conftest.py)."""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import pytest

from .conftest import ACCESS_TTL_SECONDS, Server

USERNAME = "browser-alice"
PASSWORD = "correct horse battery staple"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_demo_page_end_to_end(keyfob_server: Server, browser: Any) -> None:
    """Register, log in, watch a silent refresh, replay a stolen token, log out."""
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.goto(keyfob_server.url + "/")
    expect(page.locator("h1")).to_contain_text("keyfob")

    # Register and log in.
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(page.locator("#auth-status")).to_contain_text(f"Registered {USERNAME}")
    page.click("#login")
    expect(page.locator("#token")).to_be_visible()
    expect(page.locator("#auth-status")).to_contain_text(f"Signed in as {USERNAME}")

    # The refresh token is in an HttpOnly cookie: the browser has it, scripts cannot see it.
    cookies = {c["name"]: c for c in context.cookies()}
    refresh_cookie = cookies["__Secure-keyfob_refresh"]
    assert refresh_cookie["value"].startswith("kfrt_")
    assert refresh_cookie["httpOnly"] is True
    assert refresh_cookie["secure"] is True
    assert refresh_cookie["sameSite"] == "Strict"
    assert refresh_cookie["path"] == "/auth"
    visible = page.evaluate(
        "() => ({cookie: document.cookie, local: localStorage.length,"
        " session: sessionStorage.length})"
    )
    assert visible == {"cookie": "", "local": 0, "session": 0}
    expect(page.locator("#visible-cookie")).to_have_text('""')

    # The access token is refreshed silently before it expires: a new jti, same session.
    first_jti = page.locator("#jti").inner_text()
    sid = page.locator("#sid").inner_text()
    expect(page.locator("#refresh-count")).not_to_have_text("0", timeout=ACCESS_TTL_SECONDS * 3000)
    assert page.locator("#jti").inner_text() != first_jti
    assert page.locator("#sid").inner_text() == sid
    expect(page.locator("#events li[data-event='refresh']").first).to_contain_text("silent")
    rotated = {c["name"]: c for c in context.cookies()}["__Secure-keyfob_refresh"]
    assert rotated["value"] != refresh_cookie["value"], "the refresh token rotated"

    # A protected route answers with the access token keyfob.js holds.
    page.click("#call-me")
    expect(page.locator("#me-output")).to_contain_text("200")
    expect(page.locator("#me-output")).to_contain_text(sid)

    # The sessions list shows this tab's session.
    expect(page.locator(f"#sessions-body tr[data-sid='{sid}']")).to_contain_text("this tab")

    # Replay a stolen refresh token of a second session: reuse detected, that session gone.
    page.click("#replay-run")
    result = page.locator("#replay-result")
    expect(result).to_have_attribute("data-kind", "alarm", timeout=15_000)
    expect(result).to_contain_text("Reuse detected")
    expect(page.locator("#replay-log")).to_contain_text("invalid_grant")
    assert page.locator("#sessions-body tr").count() == 1
    expect(page.locator(f"#sessions-body tr[data-sid='{sid}']")).to_be_visible()
    events = keyfob_server.cli("events", "--kind", "reuse_detected", "--user", USERNAME)
    assert re.search(r"reuse_detected\s+" + USERNAME, events)
    assert "rule=older_token" in events

    # This tab's own session is untouched: it still refreshes and calls protected routes.
    refreshes = int(page.locator("#refresh-count").inner_text())
    expect(page.locator("#refresh-count")).not_to_have_text(
        str(refreshes), timeout=ACCESS_TTL_SECONDS * 3000
    )
    page.click("#call-me")
    expect(page.locator("#me-output")).to_contain_text("200")

    # Log out: the session is revoked and the cookie deleted.
    page.click("#logout")
    expect(page.locator("#auth-status")).to_have_text("Signed out.")
    expect(page.locator("#token")).to_be_hidden()
    assert "__Secure-keyfob_refresh" not in {c["name"] for c in context.cookies()}
    sessions = keyfob_server.cli("sessions", "list", "--user", USERNAME)
    assert "has no live sessions" in sessions

    # A reload finds no session to restore.
    page.reload()
    expect(page.locator("#auth-status")).to_have_text("Not signed in.")
    assert page_errors == []
    context.close()


def test_two_tabs_share_one_refresh(keyfob_server: Server, browser: Any) -> None:
    """Two tabs of one session refresh with one request per cycle (Web Locks + channel)."""
    from playwright.sync_api import expect

    context = browser.new_context()
    first = context.new_page()
    first.goto(keyfob_server.url + "/")
    first.fill("#username", USERNAME)
    first.fill("#password", PASSWORD)
    first.click("#register")
    expect(first.locator("#auth-status")).to_contain_text("Registered")
    first.click("#login")
    expect(first.locator("#token")).to_be_visible()

    # The second tab restores the session from the cookie and tells the first.
    second = context.new_page()
    second.goto(keyfob_server.url + "/")
    expect(second.locator("#auth-status")).to_contain_text("Signed in")
    assert second.evaluate("() => navigator.locks !== undefined")

    refreshes: list[float] = []
    context.on(
        "request",
        lambda request: (
            refreshes.append(time.monotonic()) if request.url.endswith("/auth/refresh") else None
        ),
    )
    start = [int(p.locator("#refresh-count").inner_text()) for p in (first, second)]
    for page, count in zip((first, second), start, strict=True):
        expect(page.locator("#refresh-count")).to_have_text(
            str(count + 2), timeout=ACCESS_TTL_SECONDS * 4000
        )
    assert len(refreshes) >= 2
    gaps = [b - a for a, b in itertools.pairwise(refreshes)]
    assert all(gap > ACCESS_TTL_SECONDS / 3 for gap in gaps), f"tabs raced: {gaps}"
    assert first.locator("#jti").inner_text() == second.locator("#jti").inner_text()
    context.close()


#: The policy HTML pages get (no inline script or style, no eval, same-origin only).
STRICT_CSP = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


def test_demo_page_works_under_a_strict_content_security_policy(
    keyfob_server: Server, browser: Any
) -> None:
    """With a strict CSP on the page, nothing is refused and the demo signs in and out."""
    from playwright.sync_api import expect

    context = browser.new_context()

    def with_csp(route: Any) -> None:
        response = route.fetch()
        route.fulfill(
            response=response,
            headers={**response.headers, "content-security-policy": STRICT_CSP},
        )

    context.route(keyfob_server.url + "/", with_csp)
    context.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(keyfob_server.url + "/")
    assert page.evaluate("() => document.readyState") == "complete"
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(page.locator("#auth-status")).to_contain_text(f"Registered {USERNAME}")
    page.click("#login")
    expect(page.locator("#token")).to_be_visible()
    page.click("#call-me")
    expect(page.locator("#me-output")).to_contain_text("200")
    page.click("#logout")
    expect(page.locator("#auth-status")).to_have_text("Signed out.")
    assert page.evaluate("() => violations") == []
    assert not [line for line in console if "Content Security Policy" in line]
    context.close()
