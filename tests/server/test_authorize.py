"""``GET/POST /oauth/authorize`` over HTTP (in process): the login and consent pages, every
bad input of issue #13 that concerns the authorization endpoint, CSRF, the password
checks' rate limits and throttling, and the redirect back with code, state and iss."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from keyfob import Settings, StoreUnavailable
from keyfob.core.clients import Client
from keyfob.core.models import User
from keyfob.manager import SessionManager
from keyfob.server import create_app
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import BASE_URL, PASSWORD, running, unlimited

AUTHORIZE = "/oauth/authorize"
ISSUER = "https://testserver"
REDIRECT = "https://app.example/cb"
VERIFIER = "pkce-verifier-of-the-authorize-tests-0123456789abcdef"
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
)
BROWSER_COOKIE = "__Host-keyfob_authorize"
GOOD: dict[str, str] = {
    "response_type": "code",
    "client_id": "app",
    "redirect_uri": REDIRECT,
    "scope": "openid read",
    "state": "st-123",
    "code_challenge": CHALLENGE,
    "code_challenge_method": "S256",
}


def query(**changes: str | None) -> dict[str, str]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not None}


def url(pairs: dict[str, str] | list[tuple[str, str]]) -> str:
    return f"{AUTHORIZE}?{urlencode(pairs)}"


def field(page: httpx.Response, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*? value="([^"]*)"', page.text)
    assert match, f"no {name} field in:\n{page.text}"
    return html.unescape(match[1])


def redirected(response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    """Where a 303 leads: the URI without its query, and the query's parameters."""
    assert response.status_code == 303, response.text
    assert response.headers["cache-control"] == "no-store"
    location = urlsplit(response.headers["location"])
    base = f"{location.scheme}://{location.netloc}{location.path}"
    return base, parse_qs(location.query, keep_blank_values=True)


def error_page(response: httpx.Response, status: int = 400) -> str:
    """The text of the alert on an HTML error page (and never a redirect)."""
    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    match = re.search(r'role="alert"[^>]*>([^<]*)<', response.text)
    assert match, response.text
    return html.unescape(match[1])


class Flow:
    """An app with three registered clients and one user; ``http`` is a browser."""

    def __init__(self, app: Starlette, http: httpx.AsyncClient, clock: FrozenClock) -> None:
        self.app = app
        self.http = http
        self.clock = clock
        self.manager: SessionManager = app.state.manager

    async def setup(self) -> None:
        clients = self.manager.clients
        await clients.register(
            client_id="app",
            name="The <App> & Co",
            auth_method="none",
            redirect_uris=[REDIRECT, "https://app.example/cb?tenant=1", "http://127.0.0.1/native"],
            grant_types=["authorization_code", "refresh_token"],
            scopes=["openid", "profile", "read"],
        )
        await clients.register(
            client_id="first",
            name="First Party",
            auth_method="none",
            redirect_uris=["https://first.example/cb"],
            grant_types=["authorization_code", "refresh_token"],
            scopes=["openid"],
            first_party=True,
        )
        await clients.register(
            client_id="refresh-only",
            name="Refresh Only",
            auth_method="none",
            scopes=["read"],
        )
        self.user = await self.manager.register("alice", PASSWORD)

    async def start(
        self, pairs: dict[str, str] | list[tuple[str, str]] | None = None
    ) -> httpx.Response:
        page = await self.http.get(url(GOOD if pairs is None else pairs))
        assert page.status_code == 200, page.text
        return page

    async def sign_in(
        self,
        page: httpx.Response,
        password: str = PASSWORD,
        username: str = "alice",
        **headers: str,
    ) -> httpx.Response:
        return await self.http.post(
            str(page.url),
            data={
                "csrf_token": field(page, "csrf_token"),
                "step": "login",
                "username": username,
                "password": password,
            },
            headers=headers,
        )

    async def decide(self, consent: httpx.Response, decision: str) -> httpx.Response:
        assert consent.status_code == 200, consent.text
        return await self.http.post(
            str(consent.url),
            data={
                "csrf_token": field(consent, "csrf_token"),
                "step": "consent",
                "ticket": field(consent, "ticket"),
                "decision": decision,
            },
        )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def make_app(settings: Settings, clock: FrozenClock, **limits: Any) -> Starlette:
    return create_app(
        settings, MemoryStore(), clock, rate_limits=dataclasses.replace(unlimited(), **limits)
    )


@pytest.fixture
async def flow(settings: Settings, clock: FrozenClock) -> AsyncIterator[Flow]:
    app = make_app(settings, clock)
    async with running(app) as http:
        f = Flow(app, http, clock)
        await f.setup()
        yield f


# the pages


async def test_the_login_page_follows_the_page_contract(flow: Flow) -> None:
    page = await flow.start()
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert re.search(r'<html lang="en">', page.text)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert '<form method="post"' in page.text
    assert '<label for="username">Username</label>' in page.text
    assert '<input id="username" name="username"' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert '<input id="password" name="password" type="password"' in page.text
    assert '<button type="submit">Sign in</button>' in page.text
    # The client's name is shown, escaped: no markup of a client's reaches the page.
    assert "The &lt;App&gt; &amp; Co" in page.text
    assert "<App>" not in page.text
    assert "<script" not in page.text
    assert " style=" not in page.text
    assert '<link rel="stylesheet" href="/static/authorize.css">' in page.text


async def test_the_pages_have_a_strict_policy_that_lets_the_form_reach_the_client(
    flow: Flow,
) -> None:
    page = await flow.start()
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    # Browsers check form-action on the redirect that answers the form too.
    assert directives["form-action"] == "'self' https://app.example"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_the_browser_cookie_is_host_only_httponly_and_lax(flow: Flow) -> None:
    page = await flow.start()
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{BROWSER_COOKIE}=")
    for attribute in ("Path=/", "HttpOnly", "Secure", "SameSite=Lax"):
        assert attribute in cookie.split("; ")
    assert "Domain" not in cookie
    # The browser keeps its id: a second authorization tab gets the same token.
    again = await flow.start()
    assert "set-cookie" not in again.headers
    assert field(again, "csrf_token") == field(page, "csrf_token")


async def test_the_stylesheet_is_served(flow: Flow) -> None:
    css = await flow.http.get("/static/authorize.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "@media" in css.text


# requests that are refused to the user, never redirected


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (query(client_id="nobody"), "The application is not registered with keyfob (client_id)."),
        (query(client_id=None), "client_id is missing."),
        ([*query().items(), ("client_id", "app")], "client_id is repeated."),
        (query(client_id="a" * 129), "client_id is too long (at most 128 characters)."),
        # The built-in first-party client has no redirect URI at all.
        (query(client_id="keyfob"), "The redirect_uri is not registered for this client."),
        (query(redirect_uri=None), "redirect_uri is missing."),
        ([*query().items(), ("redirect_uri", REDIRECT)], "redirect_uri is repeated."),
        (
            query(redirect_uri=REDIRECT + "?" + "x" * 2048),
            "redirect_uri is too long (at most 2048 characters).",
        ),
        (query(state="s" * 9000), "The request is too long."),
    ],
)
async def test_client_and_redirect_problems_show_an_error_page(
    flow: Flow, pairs: dict[str, str] | list[tuple[str, str]], message: str
) -> None:
    for method in ("GET", "POST"):
        response = await flow.http.request(method, url(pairs))
        assert error_page(response) == message
        assert response.headers["content-security-policy"].count("form-action 'self';") == 1


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example/cb/",
        "https://app.example/cbx",  # prefix
        "https://app.example/c",
        "https://app.example/cb/../evil",  # path traversal
        "https://app.example/cb/%2e%2e/evil",
        "https://app.example/cb#fragment",
        "https://app.example/cb?tenant=2",
        "https://attacker@app.example/cb",  # userinfo
        "https://app.example@attacker.example/cb",
        "https://app.example.attacker.example/cb",
        "https://attacker.example/?https://app.example/cb",  # open redirect variants
        "https://attacker.example/cb",
        "//attacker.example/cb",
        "https:/app.example/cb",
        "https://app.example\\@attacker.example/cb",
        "HTTPS://APP.EXAMPLE/cb",
        "http://app.example/cb",
        "http://localhost:5000/native",
        "javascript:alert(document.domain)",
        "data:text/html,<script>alert(1)</script>",
    ],
)
async def test_unregistered_redirect_uris_show_an_error_page(flow: Flow, redirect_uri: str) -> None:
    response = await flow.http.get(url(query(redirect_uri=redirect_uri)))
    assert error_page(response) == "The redirect_uri is not registered for this client."
    assert "attacker" not in response.text


async def test_a_malformed_query_shows_an_error_page(flow: Flow) -> None:
    response = await flow.http.get(AUTHORIZE + "?client_id=%ff%fe")
    assert error_page(response) == "The request is malformed."


async def test_plain_http_to_another_host_is_refused(flow: Flow) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(flow.app), base_url="http://auth.example"
    ) as insecure:
        response = await insecure.get(url(GOOD))
    assert error_page(response) == "Sign-in needs HTTPS: this page was reached over plain HTTP."
    assert "set-cookie" not in response.headers


# refusals that go back to the client


@pytest.mark.parametrize(
    ("pairs", "error", "description"),
    [
        (
            query(response_type="token"),
            "unsupported_response_type",
            "only response_type=code is supported",
        ),
        (query(response_type=None), "invalid_request", "response_type is missing"),
        (query(scope="openid admin"), "invalid_scope", "scope not allowed for this client: admin"),
        (
            query(code_challenge=None, code_challenge_method=None),
            "invalid_request",
            "PKCE is required: send an S256 code_challenge",
        ),
        (
            query(code_challenge_method="plain"),
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        (
            query(code_challenge_method=None),
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        ([*query().items(), ("scope", "read")], "invalid_request", "scope is repeated"),
        (
            [*query().items(), ("response_type", "code")],
            "invalid_request",
            "response_type is repeated",
        ),
        (query(nonce="n" * 513), "invalid_request", "nonce is too long (at most 512 characters)"),
        (
            query(prompt="none"),
            "login_required",
            "keyfob asks for the password on every authorization",
        ),
        (
            query(client_id="refresh-only", redirect_uri=REDIRECT),
            None,
            None,
        ),
    ],
)
async def test_other_errors_redirect_with_error_state_and_iss(
    flow: Flow,
    pairs: dict[str, str] | list[tuple[str, str]],
    error: str | None,
    description: str | None,
) -> None:
    response = await flow.http.get(url(pairs))
    if error is None:  # a client with no redirect URI: its refusal cannot be redirected
        error_page(response)
        return
    base, params = redirected(response)
    assert base == REDIRECT
    assert params == {
        "error": [error],
        "error_description": [description],
        "state": ["st-123"],
        "iss": [ISSUER],
    }


async def test_a_refusal_without_state_carries_none(flow: Flow) -> None:
    _, params = redirected(await flow.http.get(url(query(state=None, response_type="token"))))
    assert "state" not in params
    assert params["error"] == ["unsupported_response_type"]


async def test_an_oversize_state_is_refused_and_not_echoed(flow: Flow) -> None:
    _, params = redirected(await flow.http.get(url(query(state="s" * 2049))))
    assert params["error"] == ["invalid_request"]
    assert "state" not in params


async def test_a_refusal_keeps_the_registered_query(flow: Flow) -> None:
    target = "https://app.example/cb?tenant=1"
    response = await flow.http.get(url(query(redirect_uri=target, scope="admin")))
    location = response.headers["location"]
    assert location.startswith("https://app.example/cb?tenant=1&error=invalid_scope&")


# CSRF


async def test_a_post_without_the_browser_cookie_is_refused(flow: Flow) -> None:
    page = await flow.start()
    flow.http.cookies.clear()
    response = await flow.sign_in(page)
    assert "did not send keyfob's cookie" in error_page(response, 403)


async def test_a_post_with_a_missing_or_wrong_csrf_token_is_refused(flow: Flow) -> None:
    page = await flow.start()
    for token in ("", "x" * 43, field(page, "csrf_token")[:-2] + "AA"):
        response = await flow.http.post(
            str(page.url),
            data={"csrf_token": token, "step": "login", "username": "alice", "password": PASSWORD},
        )
        assert error_page(response, 403) == "The form is not this browser's: start again."
    response = await flow.http.post(
        str(page.url), data={"step": "login", "username": "alice", "password": PASSWORD}
    )
    assert error_page(response, 403) == "The form is not this browser's: start again."


async def test_another_browser_s_token_is_refused(flow: Flow) -> None:
    """A cross-site attacker who got a token of their own (their browser's) cannot use it
    with the victim's cookie."""
    attacker_page = await flow.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(flow.app), base_url=BASE_URL
    ) as victim:
        await victim.get(url(GOOD))
        response = await victim.post(
            url(GOOD),
            data={
                "csrf_token": field(attacker_page, "csrf_token"),
                "step": "login",
                "username": "alice",
                "password": PASSWORD,
            },
        )
    assert error_page(response, 403) == "The form is not this browser's: start again."


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"origin": "https://attacker.example"},
        {"origin": "https://app.example"},  # the client's own origin is not keyfob's
        {"origin": "http://testserver"},  # another scheme is another origin
        {"origin": "not an origin"},
    ],
)
async def test_a_cross_site_post_is_refused(flow: Flow, headers: dict[str, str]) -> None:
    page = await flow.start()
    response = await flow.sign_in(page, **headers)
    assert error_page(response, 403) == "The form was sent from another site."


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://testserver", "sec-fetch-site": "same-origin"},
        {"origin": "null"},  # what browsers send under Referrer-Policy: no-referrer
        {},
    ],
)
async def test_a_same_origin_post_goes_ahead(flow: Flow, headers: dict[str, str]) -> None:
    page = await flow.start()
    consent = await flow.sign_in(page, **headers)
    assert consent.status_code == 200
    assert 'value="allow">Allow</button>' in consent.text


# the form itself


async def test_broken_forms_get_an_html_page(flow: Flow) -> None:
    page = await flow.start()
    token = field(page, "csrf_token")
    target = str(page.url)
    big = await flow.http.post(target, data={"csrf_token": token, "x": "y" * 20000})
    assert "larger than" in error_page(big, 413)
    typed = await flow.http.post(target, json={"csrf_token": token})
    assert "must be application/x-www-form-urlencoded" in error_page(typed, 415)
    twice = await flow.http.post(
        target,
        content=f"csrf_token={token}&step=login&step=consent",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert error_page(twice) == "The parameter 'step' is repeated."
    no_step = await flow.http.post(target, data={"csrf_token": token})
    assert error_page(no_step) == "The form is incomplete: start again."


async def test_other_methods_are_not_allowed(flow: Flow) -> None:
    response = await flow.http.put(url(GOOD))
    assert response.status_code == 405


# signing in


async def test_a_wrong_password_shows_the_login_page_again(flow: Flow) -> None:
    page = await flow.start()
    response = await flow.sign_in(page, "wrong password")
    assert response.status_code == 200
    assert re.search(r'role="alert"[^>]*>Wrong username or password.<', response.text)
    assert 'aria-describedby="form-error"' in response.text
    assert field(response, "username") == "alice"
    assert "location" not in response.headers


async def test_an_unknown_user_and_a_wrong_password_look_the_same(flow: Flow) -> None:
    page = await flow.start()
    wrong = await flow.sign_in(page, "wrong password", username="alice")
    unknown = await flow.sign_in(page, "wrong password", username="alicf")
    assert (wrong.status_code, wrong.headers.keys()) == (
        unknown.status_code,
        unknown.headers.keys(),
    )
    assert wrong.text.replace('value="alice"', "") == unknown.text.replace('value="alicf"', "")


async def test_empty_or_oversize_credentials_are_refused_before_checking(flow: Flow) -> None:
    page = await flow.start()
    empty = await flow.sign_in(page, "")
    assert empty.status_code == 200
    assert "Enter your username and password." in empty.text
    long = await flow.sign_in(page, "p" * 1025)
    assert long.status_code == 400
    assert "The username or password is too long." in long.text


async def test_the_page_is_throttled_like_the_login_api(
    settings: Settings, clock: FrozenClock
) -> None:
    """After ``throttle_after`` failures the pair waits, even with the right password: a
    429 login page saying how long; the /auth/login API shares the same counters."""
    app = make_app(settings, clock, throttle_after=2)
    async with running(app) as http:
        f = Flow(app, http, clock)
        await f.setup()
        page = await f.start()
        for _ in range(2):
            assert (await f.sign_in(page, "wrong password")).status_code == 200
        throttled = await f.sign_in(page)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"
        assert re.search(
            r'role="alert"[^>]*>Too many sign-in attempts. Wait 1 second, then try again.<',
            throttled.text,
        )
        api = await http.post(
            "/auth/login", json={"username": "alice", "password": PASSWORD, "transport": "body"}
        )
        assert api.status_code == 429


async def test_the_address_limit_covers_the_page(settings: Settings, clock: FrozenClock) -> None:
    app = make_app(settings, clock, login_per_address="2/minute")
    async with running(app) as http:
        f = Flow(app, http, clock)
        await f.setup()
        page = await f.start()
        assert (await f.sign_in(page, "wrong")).status_code == 200
        assert (await f.sign_in(page, username="bob")).status_code == 200
        assert (await f.sign_in(page)).status_code == 429


async def test_a_throttle_is_a_security_event(settings: Settings, clock: FrozenClock) -> None:
    app = make_app(settings, clock, throttle_after=1)
    async with running(app) as http:
        f = Flow(app, http, clock)
        await f.setup()
        page = await f.start()
        await f.sign_in(page, "wrong password")
        events = await f.manager.events(user_id=f.user.id)
        kinds = [e.kind.value for e in events]
        assert "login_failed" in kinds
        assert "login_throttled" in kinds


async def test_a_good_password_leads_to_the_consent_page(flow: Flow) -> None:
    page = await flow.start(query(scope="openid profile read"))
    consent = await flow.sign_in(page)
    assert consent.status_code == 200
    assert consent.headers["cache-control"] == "no-store"
    assert "The &lt;App&gt; &amp; Co" in consent.text
    assert '<button type="submit" name="decision" value="allow">Allow</button>' in consent.text
    assert 'name="decision" value="deny"' in consent.text
    for scope in ("openid", "profile", "read"):
        assert f'data-scope="{scope}"' in consent.text
    assert "Signed in as <strong>alice</strong>" in consent.text
    assert "form-action 'self' https://app.example;" in consent.headers["content-security-policy"]
    # A known-device cookie for this endpoint, like /auth/login sets for its own path.
    device = [c for c in consent.headers.get_list("set-cookie") if "keyfob_device" in c]
    assert len(device) == 1
    assert "Path=/oauth/authorize" in device[0]


async def test_deny_redirects_with_access_denied(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start())
    base, params = redirected(await flow.decide(consent, "deny"))
    assert base == REDIRECT
    assert params == {
        "error": ["access_denied"],
        "error_description": ["the user denied access"],
        "state": ["st-123"],
        "iss": [ISSUER],
    }


async def test_an_unknown_decision_is_refused(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start())
    assert error_page(await flow.decide(consent, "maybe")) == "The form is incomplete: start again."


async def test_a_ticket_is_good_only_for_the_request_it_was_issued_for(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start())
    # The same form posted to a request for more scope: the user never saw that.
    response = await flow.http.post(
        url(query(scope="openid profile read")),
        data={
            "csrf_token": field(consent, "csrf_token"),
            "step": "consent",
            "ticket": field(consent, "ticket"),
            "decision": "allow",
        },
    )
    assert response.status_code == 200
    assert "Your sign-in has expired. Sign in again." in response.text
    assert 'name="password"' in response.text


async def test_a_ticket_expires(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start())
    flow.clock.advance(601)
    response = await flow.decide(consent, "allow")
    assert response.status_code == 200
    assert "Your sign-in has expired. Sign in again." in response.text


async def test_a_ticket_is_worth_nothing_in_another_browser(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(flow.app), base_url=BASE_URL
    ) as other:
        own = await other.get(url(GOOD))
        response = await other.post(
            url(GOOD),
            data={
                "csrf_token": field(own, "csrf_token"),
                "step": "consent",
                "ticket": field(consent, "ticket"),
                "decision": "allow",
            },
        )
    assert "Your sign-in has expired. Sign in again." in response.text


# allow: the code


async def exchange(
    flow: Flow, code: str, client_id: str = "app", redirect_uri: str = REDIRECT
) -> Any:
    client = await flow.manager.clients.get(client_id)
    assert client is not None
    return await flow.manager.exchange_authorization_code(
        code, client=client, redirect_uri=redirect_uri, code_verifier=VERIFIER
    )


async def test_allow_redirects_with_code_state_and_iss(flow: Flow) -> None:
    page = await flow.start(query(nonce="nonce-1"))
    login_time = flow.clock.now()
    consent = await flow.sign_in(page)
    flow.clock.advance(30)  # the user reads the consent page
    base, params = redirected(await flow.decide(consent, "allow"))
    assert base == REDIRECT
    assert set(params) == {"code", "state", "iss"}
    assert (params["state"], params["iss"]) == (["st-123"], [ISSUER])
    exchanged = await exchange(flow, params["code"][0])
    # auth_time is when the password was checked, not when Allow was pressed.
    assert exchanged.auth_time == login_time
    assert exchanged.nonce == "nonce-1"
    session = exchanged.pair.session
    assert (session.user_id, session.client_id) == (flow.user.id, "app")
    assert session.scope == "openid read"


async def test_allow_without_state_sends_none(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start(query(state=None)))
    _, params = redirected(await flow.decide(consent, "allow"))
    assert set(params) == {"code", "iss"}


async def test_the_code_keeps_the_registered_query_and_the_loopback_port(flow: Flow) -> None:
    consent = await flow.sign_in(
        await flow.start(query(redirect_uri="http://127.0.0.1:49152/native"))
    )
    response = await flow.decide(consent, "allow")
    assert response.headers["location"].startswith("http://127.0.0.1:49152/native?code=")
    consent = await flow.sign_in(
        await flow.start(query(redirect_uri="https://app.example/cb?tenant=1"))
    )
    response = await flow.decide(consent, "allow")
    assert response.headers["location"].startswith("https://app.example/cb?tenant=1&code=")


async def test_a_first_party_client_skips_consent(flow: Flow) -> None:
    target = "https://first.example/cb"
    page = await flow.start(query(client_id="first", redirect_uri=target, scope="openid"))
    assert "form-action 'self' https://first.example;" in page.headers["content-security-policy"]
    base, params = redirected(await flow.sign_in(page))
    assert base == target
    assert (params["state"], params["iss"]) == (["st-123"], [ISSUER])
    exchanged = await exchange(flow, params["code"][0], "first", target)
    assert exchanged.pair.session.client_id == "first"
    # The known-device cookie comes with the redirect too.
    assert any(
        "keyfob_device" in c for c in (await flow.sign_in(page)).headers.get_list("set-cookie")
    )


async def test_a_double_click_on_allow_gives_two_codes_for_the_same_grant(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start())
    first = redirected(await flow.decide(consent, "allow"))[1]["code"][0]
    second = redirected(await flow.decide(consent, "allow"))[1]["code"][0]
    assert first != second
    assert (await exchange(flow, second)).pair.session.scope == "openid read"


class FlakyStore(MemoryStore):
    """A memory store whose user and client reads fail while it is down."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the database is unreachable", retry_after=3)

    async def get_user_by_name(self, username: str) -> User | None:
        self._check()
        return await super().get_user_by_name(username)

    async def get_client(self, client_id: str) -> Client | None:
        self._check()
        return await super().get_client(client_id)


async def test_a_store_outage_is_a_503_page(settings: Settings, clock: FrozenClock) -> None:
    store = FlakyStore()
    app = create_app(settings, store, clock, rate_limits=unlimited())
    async with running(app) as http:
        f = Flow(app, http, clock)
        await f.setup()
        page = await f.start()
        store.down = True
        for response in (
            await f.sign_in(page),
            await http.get(url(query(client_id="not-seen-before"))),
        ):
            assert error_page(response, 503) == "The database is unreachable."
            assert response.headers["retry-after"] == "3"
            assert "Sign-in is unavailable right now" in response.text


async def test_the_client_exchanges_the_code_at_the_token_endpoint(flow: Flow) -> None:
    consent = await flow.sign_in(await flow.start())
    _, params = redirected(await flow.decide(consent, "allow"))
    form = {
        "grant_type": "authorization_code",
        "code": params["code"][0],
        "redirect_uri": REDIRECT,
        "client_id": "app",
        "code_verifier": VERIFIER,
    }
    tokens = await flow.http.post("/oauth/token", data=form)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid read"
    again = await flow.http.post("/oauth/token", data=form)
    assert again.json()["error"] == "invalid_grant"
