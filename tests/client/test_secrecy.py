"""Tokens stay secret: the refresh token travels to the token endpoint only, and no token
appears in a log line, a repr or an error message."""

from __future__ import annotations

import logging

import httpx
import pytest

from keyfob.client import (
    KeyfobAuth,
    OAuthTokenEndpoint,
    SessionEnded,
    TokenSaveError,
)

from .fakes import API, TOKEN_URL, Clock, Failure, FakeAuthServer, refresh_token
from .test_auth import FAST_RETRY


def _everything(server: FakeAuthServer, request: httpx.Request) -> httpx.Response:
    """API routes that redirect to other hosts and paths, besides the fake server's own."""
    if request.url.path == "/hop":
        return httpx.Response(302, headers={"Location": "https://other.example/landing"})
    if request.url.host == "other.example":
        server._record(request)
        return httpx.Response(200)
    return server.handler(request)


def _exercise(server: FakeAuthServer, clock: Clock, auth: KeyfobAuth) -> None:
    """Requests to several hosts and paths, through a refresh ahead of expiry, a 401
    refresh, retried 503s and a redirect to another host."""
    transport = httpx.MockTransport(lambda r: _everything(server, r))
    with httpx.Client(transport=transport, auth=auth, follow_redirects=True) as client:
        client.get(f"{API}/things?x=1")
        client.post("https://third.example/upload", content=b"data")
        clock.advance(900)
        server.failures = [Failure(503, "0"), Failure(network=True)]
        client.get(f"{API}/after-expiry")
        server.api_min_generation = server.generation + 1
        client.get(f"{API}/refused-once")  # 401 invalid_token, refresh, retry
        client.get(f"{API}/hop")
        client.get("https://auth.example/oauth/other-path")


def test_the_refresh_token_is_sent_to_the_token_endpoint_only(
    server: FakeAuthServer, clock: Clock
) -> None:
    """Every request that is not the token endpoint carries no refresh token, in its URL,
    headers or body; the token requests all go to the token URL."""
    token_client = httpx.Client(transport=httpx.MockTransport(server.handler))
    auth = KeyfobAuth(
        server.endpoint(), server.issue(), clock=clock, retry=FAST_RETRY, token_client=token_client
    )
    _exercise(server, clock, auth)
    issued = [refresh_token(n) for n in range(server.generation + 1)]
    assert server.generation == 2
    elsewhere = [r for r in server.requests if r.url != TOKEN_URL]
    assert {r.url.host for r in elsewhere} == {
        "api.example",
        "third.example",
        "other.example",
        "auth.example",
    }
    for request in elsewhere:
        wire = f"{request.url} {request.headers.multi_items()} {request.content!r}"
        assert not any(token in wire for token in issued), request.url
    token_requests = [r for r in server.requests if r.url == TOKEN_URL]
    assert len(token_requests) == 4  # 503, network error, 200; then the 401's refresh
    assert all(r.method == "POST" and "authorization" not in r.headers for r in token_requests)


def test_no_token_is_logged_or_printed(
    server: FakeAuthServer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG on every logger (httpx's too), through refreshes, retries, a failing saver
    and the end of the session, no token appears in the logs, reprs or error messages."""
    caplog.set_level(logging.DEBUG)
    fail_once = iter([True])

    def saver(tokens: object) -> None:
        if next(fail_once, False):
            raise OSError("disk full")

    token_client = httpx.Client(transport=httpx.MockTransport(server.handler))
    auth = KeyfobAuth(
        server.endpoint(),
        server.issue(),
        clock=clock,
        retry=FAST_RETRY,
        token_client=token_client,
        token_saver=saver,
    )
    printed = [repr(auth), repr(auth.tokens), str(auth.tokens)]
    clock.advance(900)
    with httpx.Client(transport=httpx.MockTransport(server.handler), auth=auth) as client:
        with pytest.raises(TokenSaveError) as save_error:
            client.get(f"{API}/x")
        printed.append(str(save_error.value))
        _exercise(server, clock, auth)
        printed += [repr(auth), repr(auth.tokens)]
        server.revoked = True
        clock.advance(900)
        with pytest.raises(SessionEnded) as ended:
            client.get(f"{API}/x")
        printed += [str(ended.value), repr(ended.value), repr(auth)]

    secret_endpoint = OAuthTokenEndpoint(TOKEN_URL, client_id="cli", client_secret="s3cr3t-value")
    printed.append(repr(secret_endpoint))
    access_tokens = {
        r.headers["authorization"].removeprefix("Bearer ")
        for r in server.requests
        if "authorization" in r.headers and r.url != TOKEN_URL
    }
    secrets = {refresh_token(n) for n in range(server.generation + 1)} | access_tokens
    # The payload alone is a usable part of a JWT: it must not leak either.
    secrets |= {token.split(".")[1] for token in access_tokens}
    secrets.add("s3cr3t-value")
    assert len(access_tokens) >= 3
    text = caplog.text + "\n".join(printed)
    assert "refresh" in caplog.text  # the client did log its work
    leaked = sorted(s[:12] for s in secrets if s in text)
    assert leaked == []
