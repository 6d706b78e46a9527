"""keyfob.js across the tabs of one browser: real Chromium, a real ``keyfob serve``.

Each "tab" is a page of one browser context (one cookie jar, one origin), on a plain
same-origin document that imports /static/keyfob.js, as an app would, and records the
client's events in ``window.seen``. Refreshes are counted where the browser sends them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import ACCESS_TTL_SECONDS, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

USERNAME = "tabs-alice"
PASSWORD = "correct horse battery staple"

#: What each tab runs: the app's side of keyfob.js, with every event recorded.
APP = """async (base) => {
  const { Client } = await import(base + "/static/keyfob.js");
  window.auth = new Client({ baseUrl: base + "/" });
  window.seen = [];
  for (const name of ["login", "refresh", "logout", "session-ended", "error"]) {
    auth.on(name, (detail) => seen.push({ name, ...detail }));
  }
}"""
LIFETIME_MS = ACCESS_TTL_SECONDS * 1000


def open_tab(context: Any, server: Server) -> Any:
    page = context.new_page()
    page.goto(server.url + "/.well-known/jwks.json")
    page.evaluate(APP, server.url)
    return page


def sign_in(first: Any, others: list[Any]) -> None:
    """Register and log in in the first tab; the others restore the session."""
    first.evaluate(
        "([u, p]) => auth.register(u, p).then(() => auth.login(u, p))", [USERNAME, PASSWORD]
    )
    for page in others:
        assert page.evaluate("() => auth.restore()") is True


def jti(page: Any) -> str | None:
    claims = page.evaluate("() => auth.claims()")
    return None if claims is None else str(claims["jti"])


def seen(page: Any, name: str) -> list[dict[str, Any]]:
    return list(page.evaluate("(name) => seen.filter((e) => e.name === name)", name))


def refresh_requests(context: Any) -> list[float]:
    """The times at which the browser sends POST /auth/refresh, from now on."""
    sent: list[float] = []

    def on_request(request: Any) -> None:
        if request.url.endswith("/auth/refresh"):
            sent.append(time.monotonic())

    context.on("request", on_request)
    return sent


def test_five_tabs_reaching_expiry_together_send_one_refresh(
    keyfob_server: Server, browser: Any
) -> None:
    """Five tabs of one session: five refresh() at once, and each expiry cycle, are one
    request each, and every tab gets that request's token."""
    context = browser.new_context()
    refreshes = refresh_requests(context)
    pages = [open_tab(context, keyfob_server) for _ in range(5)]
    sign_in(pages[0], pages[1:])
    assert refreshes == [], "new tabs took the token from their sibling, not the cookie"
    assert len({jti(page) for page in pages}) == 1

    # All five ask at the same moment on the shared clock (seconds before their timers
    # are due): one request.
    at = pages[0].evaluate("() => Date.now() + 500")
    for page in pages:
        page.evaluate(
            "(at) => { window.together = new Promise((resolve) =>"
            " setTimeout(resolve, at - Date.now())).then(() => auth.refresh()); }",
            at,
        )
    details = [page.evaluate("() => together") for page in pages]
    assert len(refreshes) == 1
    assert sorted(d["source"] for d in details) == ["self", "tab", "tab", "tab", "tab"]
    assert len({d["expiresAt"] for d in details}) == 1
    assert len({jti(page) for page in pages}) == 1

    # Then their timers come due within the same jitter window, cycle after cycle.
    for page in pages:
        page.wait_for_function(
            "() => seen.filter((e) => e.name === 'refresh').length >= 3", timeout=LIFETIME_MS * 4
        )
    for page in pages:
        page.evaluate("() => auth.close()")  # no further cycle while we count
    time.sleep(0.5)  # a request already in flight lands
    cycles: dict[int, list[str]] = {}
    for page in pages:
        for event in seen(page, "refresh"):
            cycles.setdefault(event["expiresAt"], []).append(event["source"])
    assert len(cycles) >= 3
    for expires_at, sources in cycles.items():
        assert sources.count("self") == 1, f"cycle {expires_at}: {sources}"
    assert len(refreshes) == len(cycles), "one request per cycle"
    complete = [sources for sources in cycles.values() if len(sources) == 5]
    assert len(complete) >= 3, "every tab got each token"
    for page in pages:
        assert seen(page, "session-ended") == [] and seen(page, "logout") == []
    context.close()


def test_a_tab_asleep_past_the_grace_window_recovers(serve: Any, browser: Any) -> None:
    """A sleeping tab misses refreshes past the grace window; awake, it carries on signed in."""
    server = serve(KEYFOB_GRACE="1s")
    context = browser.new_context()
    awake, asleep = open_tab(context, server), open_tab(context, server)
    sign_in(awake, [asleep])
    # Asleep: its JavaScript stops (timers, channel messages wait), as on a suspended
    # laptop. The debugger pause holds it on its next task.
    debugger = context.new_cdp_session(asleep)
    debugger.send("Debugger.enable")
    debugger.send("Debugger.pause")
    # The awake tab refreshes twice: the frozen tab's token and its era of the cookie are
    # gone, and the 1 s grace window is long past.
    awake.wait_for_function(
        "() => seen.filter((e) => e.name === 'refresh').length >= 2", timeout=LIFETIME_MS * 4
    )
    debugger.send("Debugger.resume")
    debugger.send("Debugger.disable")

    status = asleep.evaluate("() => auth.fetch('/auth/me').then((r) => r.status)")
    assert status == 200
    # Both tabs hold the same token once the channel has carried the newest one over.
    deadline = time.monotonic() + 10
    while jti(asleep) != jti(awake) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jti(asleep) == jti(awake)
    for page in (awake, asleep):
        assert seen(page, "session-ended") == [] and seen(page, "logout") == []
        assert page.evaluate("() => auth.isAuthenticated") is True
    assert "reuse_detected" not in server.cli("events", "--kind", "reuse_detected")
    context.close()


def test_logout_in_one_tab_signs_every_tab_out(keyfob_server: Server, browser: Any) -> None:
    """One tab logs out: every tab drops its token and hears of it; the cookie is gone."""
    context = browser.new_context()
    pages = [open_tab(context, keyfob_server) for _ in range(3)]
    sign_in(pages[0], pages[1:])
    pages[0].evaluate("() => auth.logout()")
    for page in pages[1:]:
        page.wait_for_function(
            "() => !auth.isAuthenticated && seen.some((e) => e.name === 'logout')",
            timeout=10_000,
        )
        assert seen(page, "logout") == [{"name": "logout", "source": "tab"}]
    assert pages[1].evaluate("() => auth.restore()") is False
    sessions = keyfob_server.cli("sessions", "list", "--user", USERNAME)
    assert "has no live sessions" in sessions
    context.close()


@pytest.mark.parametrize(("status", "retry_after"), [(503, 1), (429, 2)])
def test_an_outage_answer_is_retried_after_retry_after_without_a_logout(
    keyfob_server: Server, browser: Any, status: int, retry_after: int
) -> None:
    """The first refresh is answered 503 (or 429) with Retry-After: one tab retries after
    the delay with the same cookie, both tabs get the successor, nobody is signed out."""
    context = browser.new_context()
    first, second = open_tab(context, keyfob_server), open_tab(context, keyfob_server)
    sign_in(first, [second])
    answered: list[tuple[float, int]] = []

    def outage_once(route: Any) -> None:
        if not answered:
            answered.append((time.monotonic(), status))
            error = "temporarily_unavailable" if status == 503 else "too_many_requests"
            route.fulfill(
                status=status,
                headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
                content_type="application/json",
                body=json.dumps({"error": error, "error_description": "injected by the test"}),
            )
        else:
            answered.append((time.monotonic(), 200))
            route.continue_()

    context.route("**/auth/refresh", outage_once)
    before = jti(first)
    first.evaluate("() => { window.pending = auth.refresh(); }")
    second.evaluate("() => { window.pending = auth.refresh(); }")
    results = [page.evaluate("() => pending") for page in (first, second)]

    assert [code for _, code in answered] == [status, 200], "one retry loop for both tabs"
    waited = answered[1][0] - answered[0][0]
    assert waited >= retry_after - 0.1, f"retried after {waited:.2f} s"
    assert sorted(r["source"] for r in results) == ["self", "tab"]
    assert jti(first) == jti(second) != before
    errors = seen(first, "error") + seen(second, "error")
    assert [(e["status"], e["retryInMs"]) for e in errors] == [(status, retry_after * 1000)]
    for page in (first, second):
        assert seen(page, "session-ended") == [] and seen(page, "logout") == []
    assert first.evaluate("() => auth.fetch('/auth/me').then((r) => r.status)") == 200
    context.close()
