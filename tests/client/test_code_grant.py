"""KeyfobAuth.authorize: the authorization-code flow with PKCE and a loopback redirect,
for programs a person runs (RFC 8252), against a scripted authorization server.

The "browser" here is a function that receives the authorization URL and visits the
loopback redirect with whatever answer the test wants the server to have given; the
metadata and token endpoints are an ``httpx.MockTransport``. The whole flow against a
real ``keyfob serve`` is in test_against_keyfob.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from keyfob.client import AuthorizationFailed, KeyfobAuth, LoginFailed, TokenEndpointUnavailable
from keyfob.client.authorization import (
    AuthorizationRequest,
    ServerMetadata,
    discover_request,
    server_metadata,
)
from keyfob.client.loopback import LoopbackRedirect

ISSUER = "https://auth.example"
METADATA = {
    "issuer": ISSUER,
    "authorization_endpoint": ISSUER + "/oauth/authorize",
    "token_endpoint": ISSUER + "/oauth/token",
    "code_challenge_methods_supported": ["S256"],
    "authorization_response_iss_parameter_supported": True,
}
SERVER = server_metadata(ISSUER, 200, json.dumps(METADATA).encode())
PAIR = {
    "access_token": "a" * 40,
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": "r" * 40,
}


def _challenge(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


class ScriptedServer:
    """The metadata and token endpoints; records what the token endpoint was sent."""

    def __init__(self, metadata: dict[str, object] = METADATA, token_status: int = 200) -> None:
        self.metadata = metadata
        self.token_status = token_status
        self.token_forms: list[dict[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json=self.metadata)
        if request.url.path == "/oauth/token":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.token_forms.append(form)
            if self.token_status == 200:
                return httpx.Response(200, json=PAIR)
            error = "invalid_grant" if self.token_status == 400 else "temporarily_unavailable"
            return httpx.Response(
                self.token_status, json={"error": error}, headers={"Retry-After": "1"}
            )
        return httpx.Response(404)


def browser_answering(
    answer: Callable[[dict[str, str]], dict[str, str]], seen: list[str] | None = None
) -> Callable[[str], bool]:
    """A browser whose sign-in ends in a redirect carrying ``answer(authorization query)``."""

    def open_browser(url: str) -> bool:
        if seen is not None:
            seen.append(url)
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        redirect = query["redirect_uri"] + "?" + urlencode(answer(query))
        httpx.get(redirect, timeout=5)
        return True

    return open_browser


def good_answer(query: dict[str, str]) -> dict[str, str]:
    return {"code": "the-code", "state": query["state"], "iss": ISSUER}


def _authorize(server: ScriptedServer, browser: Callable[[str], bool], **kw: object) -> KeyfobAuth:
    with httpx.Client(transport=httpx.MockTransport(server.handle)) as http:
        return KeyfobAuth.authorize(
            ISSUER,
            "my-cli",
            scope="openid",
            open_browser=browser,
            wait=5,
            token_client=http,
            **kw,  # type: ignore[arg-type]
        )


def test_signs_in_and_exchanges_the_code_with_its_pkce_verifier() -> None:
    server = ScriptedServer()
    urls: list[str] = []
    saved = []
    auth = _authorize(server, browser_answering(good_answer, urls), token_saver=saved.append)

    query = {k: v[0] for k, v in parse_qs(urlsplit(urls[0]).query).items()}
    assert urls[0].startswith(ISSUER + "/oauth/authorize?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "my-cli"
    assert query["scope"] == "openid"
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/callback", query["redirect_uri"])
    [form] = server.token_forms
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "the-code"
    assert form["redirect_uri"] == query["redirect_uri"]
    assert form["client_id"] == "my-cli"
    assert _challenge(form["code_verifier"]) == query["code_challenge"]
    assert auth.tokens.refresh_token == PAIR["refresh_token"]
    assert saved == [auth.tokens]
    assert auth.endpoint.url == ISSUER + "/oauth/token"


def test_a_confidential_client_authenticates_the_exchange_with_basic() -> None:
    server = ScriptedServer()
    _authorize(server, browser_answering(good_answer), client_secret="s3cret")
    [form] = server.token_forms
    assert "client_id" not in form  # in the Authorization header instead (RFC 6749 §2.3.1)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda q: {"code": "c", "state": "forged", "iss": ISSUER}, "invalid_state"),
        (lambda q: {"code": "c", "iss": ISSUER}, "invalid_state"),
        (
            lambda q: {"code": "c", "state": q["state"], "iss": "https://evil.example"},
            "invalid_issuer",
        ),
        (lambda q: {"code": "c", "state": q["state"]}, "invalid_issuer"),
        (lambda q: {"state": q["state"], "iss": ISSUER}, "invalid_response"),
        (
            lambda q: {
                "error": "access_denied",
                "error_description": "no",
                "state": q["state"],
                "iss": ISSUER,
            },
            "access_denied",
        ),
    ],
    ids=["forged-state", "no-state", "other-issuer", "no-iss", "no-code", "denied"],
)
def test_a_redirect_that_does_not_answer_this_request_is_refused_before_any_token_request(
    answer: Callable[[dict[str, str]], dict[str, str]], error: str
) -> None:
    server = ScriptedServer()
    with pytest.raises(AuthorizationFailed) as refused:
        _authorize(server, browser_answering(answer))
    assert refused.value.error == error
    assert server.token_forms == []


def test_a_refused_code_is_login_failed() -> None:
    with pytest.raises(LoginFailed):
        _authorize(ScriptedServer(token_status=400), browser_answering(good_answer))


def test_the_code_exchange_is_never_retried() -> None:
    """A code is single-use: a second try would make the server revoke the session."""
    server = ScriptedServer(token_status=503)
    with pytest.raises(TokenEndpointUnavailable):
        _authorize(server, browser_answering(good_answer))
    assert len(server.token_forms) == 1


def test_nobody_signing_in_ends_in_a_timeout() -> None:
    transport = httpx.MockTransport(ScriptedServer().handle)
    with httpx.Client(transport=transport) as http, pytest.raises(AuthorizationFailed) as refused:
        KeyfobAuth.authorize(
            ISSUER, "my-cli", open_browser=lambda url: True, wait=0.2, token_client=http
        )
    assert refused.value.error == "timeout"


def test_without_a_browser_the_url_is_logged_for_the_person(
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls: list[str] = []
    visit = browser_answering(good_answer, urls)

    def no_browser(url: str) -> bool:
        visit(url)
        return False

    with caplog.at_level(logging.WARNING, logger="keyfob.client"):
        _authorize(ScriptedServer(), no_browser)
    assert urls[0] in caplog.text


def test_the_async_flow_does_the_same_without_blocking_the_loop() -> None:
    server = ScriptedServer()
    ticks = 0

    async def main() -> KeyfobAuth:
        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        loop = asyncio.get_running_loop()
        ticker = asyncio.create_task(tick())

        def open_browser(url: str) -> bool:
            # The person signs in a little later; meanwhile the loop must go on ticking.
            loop.call_later(
                0.3, lambda: loop.run_in_executor(None, browser_answering(good_answer), url)
            )
            return True

        async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as http:
            auth = await KeyfobAuth.aauthorize(
                ISSUER, "my-cli", open_browser=open_browser, wait=5, async_token_client=http
            )
        ticker.cancel()
        return auth

    auth = asyncio.run(main())
    assert auth.tokens.access_token == PAIR["access_token"]
    assert len(server.token_forms) == 1
    assert ticks >= 5  # a blocked loop would not have ticked at all while the person signed in


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"issuer": "https://other.example"}, "another issuer"),
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE S256"),
        ({"code_challenge_methods_supported": None}, "PKCE S256"),
        ({"token_endpoint": "http://auth.example/oauth/token"}, "https"),
        ({"authorization_endpoint": None}, "authorization_endpoint"),
    ],
)
def test_a_server_that_cannot_do_the_flow_safely_is_refused(
    change: dict[str, object], why: str
) -> None:
    metadata = {**METADATA, **change}
    metadata = {k: v for k, v in metadata.items() if v is not None}
    with pytest.raises(AuthorizationFailed, match=why) as refused:
        server_metadata(ISSUER, 200, json.dumps(metadata).encode())
    assert refused.value.error == "invalid_metadata"


@pytest.mark.parametrize(("status", "body"), [(404, b"{}"), (200, b"not json"), (200, b"[1]")])
def test_unreadable_metadata_is_refused(status: int, body: bytes) -> None:
    with pytest.raises(AuthorizationFailed):
        server_metadata(ISSUER, status, body)


def test_metadata_lives_at_the_well_known_path_before_the_issuers_path() -> None:
    """RFC 8414 §3.1."""
    assert (
        discover_request("https://a.example")
        == "https://a.example/.well-known/oauth-authorization-server"
    )
    assert (
        discover_request("https://a.example/t1/")
        == "https://a.example/.well-known/oauth-authorization-server/t1"
    )
    with pytest.raises(ValueError, match="https"):
        discover_request("http://a.example")


def test_each_attempt_has_fresh_secrets_and_a_verifier_rfc_7636_accepts() -> None:
    first = AuthorizationRequest(SERVER, "c", "http://127.0.0.1:1/cb", "")
    second = AuthorizationRequest(SERVER, "c", "http://127.0.0.1:1/cb", "")
    assert first.state != second.state and first.code_verifier != second.code_verifier
    assert re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", first.code_verifier)
    assert "scope=" not in first.url
    assert first.state not in repr(first) and first.code_verifier not in repr(first)


def test_a_parameter_sent_twice_is_refused() -> None:
    request = AuthorizationRequest(SERVER, "c", "http://127.0.0.1:1/cb", "")
    query = f"code=a&code=b&state={request.state}&iss={ISSUER}"
    with pytest.raises(AuthorizationFailed, match="twice"):
        request.code_from_redirect(query)


def test_a_server_that_does_not_announce_iss_may_leave_it_out() -> None:
    quiet = ServerMetadata(
        ISSUER, METADATA["authorization_endpoint"], METADATA["token_endpoint"], False
    )  # type: ignore[arg-type]
    request = AuthorizationRequest(quiet, "c", "http://127.0.0.1:1/cb", "")
    assert request.code_from_redirect(urlencode({"code": "k", "state": request.state})) == "k"
    with pytest.raises(AuthorizationFailed):  # but if it sends one, it must be right
        request.code_from_redirect(urlencode({"code": "k", "state": request.state, "iss": "x"}))


class TestLoopbackRedirect:
    def test_listens_on_the_loopback_ip_and_takes_only_the_first_answer(self) -> None:
        with LoopbackRedirect() as redirect:
            uri = redirect.redirect_uri
            assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/callback", uri)
            assert httpx.get(uri.replace("/callback", "/favicon.ico")).status_code == 404
            first = httpx.get(uri + "?code=1&state=s")
            assert httpx.get(uri + "?code=2&state=s").status_code == 409
            assert redirect.wait(1) == "code=1&state=s"
        assert first.status_code == 200
        assert first.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in first.headers["content-security-policy"]
        assert first.headers["cache-control"] == "no-store"

    def test_refuses_a_path_with_a_query(self) -> None:
        with pytest.raises(ValueError, match="without query"):
            LoopbackRedirect("/cb?x=1")

    def test_prints_no_request_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        with LoopbackRedirect() as redirect:
            httpx.get(redirect.redirect_uri + "?code=secret-code&state=s")
            redirect.wait(1)
        captured = capsys.readouterr()
        assert "secret-code" not in captured.out + captured.err
