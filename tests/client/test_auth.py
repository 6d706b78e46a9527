"""KeyfobAuth with httpx.Client and httpx.AsyncClient against a fake token server:
refresh ahead of expiry and on 401, the saver before use, errors, retries."""

from __future__ import annotations

import httpx
import pytest

from keyfob.client import (
    KeyfobAuth,
    RetryPolicy,
    SessionEnded,
    TokenEndpointError,
    TokenEndpointUnavailable,
    TokenSaveError,
    TokenSet,
)

from .fakes import API, Clock, Failure, FakeAuthServer, refresh_token

FAST_RETRY = RetryPolicy(attempts=4, max_wait=5.0, backoff=0.0)


def make_auth(server: FakeAuthServer, clock: Clock, **options: object) -> KeyfobAuth:
    """An auth whose token requests go to the fake server through a MockTransport."""
    token_client = httpx.Client(transport=httpx.MockTransport(server.handler))
    async_token_client = httpx.AsyncClient(transport=httpx.MockTransport(server.async_handler))
    return KeyfobAuth(
        server.endpoint(),
        server.issue(),
        clock=clock,
        retry=FAST_RETRY,
        token_client=token_client,
        async_token_client=async_token_client,
        **options,  # type: ignore[arg-type]
    )


def api_client(server: FakeAuthServer, auth: KeyfobAuth) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server.handler), auth=auth, base_url=API)


def async_api_client(server: FakeAuthServer, auth: KeyfobAuth) -> httpx.AsyncClient:
    transport = httpx.MockTransport(server.async_handler)
    return httpx.AsyncClient(transport=transport, auth=auth, base_url=API)


def test_a_fresh_access_token_is_sent_without_refreshing(
    server: FakeAuthServer, clock: Clock
) -> None:
    """While the access token is fresh, requests carry it and nothing is refreshed."""
    auth = make_auth(server, clock)
    with api_client(server, auth) as api:
        assert api.get("/things").status_code == 200
        clock.advance(800)  # 100 s before expiry: not yet due (skew 30 s)
        assert api.get("/things").status_code == 200
    assert server.refreshes == []


def test_the_token_is_refreshed_ahead_of_expiry(server: FakeAuthServer, clock: Clock) -> None:
    """Within `skew` of expiry, the next request refreshes first and uses the new token."""
    auth = make_auth(server, clock)
    with api_client(server, auth) as api:
        clock.advance(900 - 29)
        assert api.get("/things").status_code == 200
    assert server.refreshes == [refresh_token(0)]
    assert auth.tokens.refresh_token == refresh_token(1)


def test_a_short_lived_token_is_refreshed_after_half_its_life(
    server: FakeAuthServer, clock: Clock
) -> None:
    """With a 60 s token, the 30 s skew would refresh at once: half its life is used."""
    server.access_ttl = 60
    auth = make_auth(server, clock)
    with api_client(server, auth) as api:
        clock.advance(31)  # past half of the 60 s life: due
        api.get("/things")
    assert server.refreshes == [refresh_token(0)]
    assert auth.tokens.expires_at == clock() + 60


def test_a_set_with_only_a_refresh_token_refreshes_before_the_first_request(
    server: FakeAuthServer, clock: Clock
) -> None:
    """TokenSet(refresh_token=...) alone (a restarted program) refreshes once, first."""
    auth = KeyfobAuth(
        server.endpoint(),
        TokenSet(refresh_token=refresh_token(0)),
        clock=clock,
        token_client=httpx.Client(transport=httpx.MockTransport(server.handler)),
    )
    with api_client(server, auth) as api:
        assert api.get("/things").status_code == 200
    assert server.refreshes == [refresh_token(0)]


def test_a_401_invalid_token_refreshes_once_and_retries_the_request_with_its_body(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The API refusing the token (401 invalid_token) causes one refresh and one resend of
    the same request, body included."""
    auth = make_auth(server, clock)
    server.api_rejects = 1
    with api_client(server, auth) as api:
        r = api.post("/things", content=b"payload")
    assert r.status_code == 200
    assert r.json()["body"] == "payload"
    assert server.refreshes == [refresh_token(0)]


def test_a_second_401_is_returned_not_looped_on(server: FakeAuthServer, clock: Clock) -> None:
    """If the fresh token is refused too, the 401 goes back to the caller: one retry only."""
    auth = make_auth(server, clock)
    server.api_rejects = 5
    with api_client(server, auth) as api:
        r = api.get("/things")
    assert r.status_code == 401
    assert len(server.refreshes) == 1
    assert len([q for q in server.requests if q.url.host == "api.example"]) == 2


@pytest.mark.parametrize(
    "challenge",
    ['Bearer realm="api"', 'Bearer error="insufficient_scope"', 'Basic realm="x"', None],
)
def test_a_401_without_invalid_token_is_returned_without_refreshing(
    server: FakeAuthServer, clock: Clock, challenge: str | None
) -> None:
    """Only `Bearer error="invalid_token"` means a new token could help."""

    def api(request: httpx.Request) -> httpx.Response:
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        return httpx.Response(401, headers=headers)

    auth = make_auth(server, clock)
    with httpx.Client(transport=httpx.MockTransport(api), auth=auth) as client:
        assert client.get(f"{API}/x").status_code == 401
    assert server.refreshes == []


def test_the_saver_has_the_new_refresh_token_before_any_request_uses_it(
    server: FakeAuthServer, clock: Clock
) -> None:
    """token_saver runs before the new access token is sent anywhere."""
    saved: list[str] = []
    auth = make_auth(server, clock, token_saver=lambda t: saved.append(t.refresh_token))
    seen_by_api: list[list[str]] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen_by_api.append(list(saved))
        return server.handler(request)

    clock.advance(900)
    with httpx.Client(transport=httpx.MockTransport(api), auth=auth) as client:
        assert client.get(f"{API}/x").status_code == 200
    assert seen_by_api == [[refresh_token(1)]]


def test_a_failing_saver_keeps_the_old_tokens_and_the_next_refresh_uses_the_old_token(
    server: FakeAuthServer, clock: Clock
) -> None:
    """If the saver raises, TokenSaveError comes out, the new pair is never used, and the
    next try presents the same refresh token (which the server's grace rule answers with
    the same successor)."""
    calls = 0

    def flaky_saver(tokens: TokenSet) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")

    auth = make_auth(server, clock, token_saver=flaky_saver)
    clock.advance(900)
    with api_client(server, auth) as api:
        with pytest.raises(TokenSaveError) as raised:
            api.get("/things")
        assert isinstance(raised.value.__cause__, OSError)
        assert auth.tokens.refresh_token == refresh_token(0)
        assert api.get("/things").status_code == 200
    assert server.refreshes == [refresh_token(0), refresh_token(0)]
    assert auth.tokens.refresh_token == refresh_token(1)


def test_invalid_grant_raises_session_ended_once_and_for_all(
    server: FakeAuthServer, clock: Clock
) -> None:
    """invalid_grant raises SessionEnded with the server's words, and every later request
    raises it again without asking the server."""
    auth = make_auth(server, clock)
    server.revoked = True
    clock.advance(900)
    with api_client(server, auth) as api:
        with pytest.raises(SessionEnded, match="invalid_grant: session revoked") as raised:
            api.get("/things")
        assert raised.value.error == "invalid_grant"
        assert raised.value.status_code == 400
        with pytest.raises(SessionEnded):
            api.get("/things")
    assert len(server.refreshes) == 1
    assert "ended" in repr(auth)


async def test_invalid_grant_raises_session_ended_in_async_clients(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The async path raises the same SessionEnded."""
    auth = make_auth(server, clock)
    server.revoked = True
    clock.advance(900)
    async with async_api_client(server, auth) as api:
        with pytest.raises(SessionEnded):
            await api.get("/things")
        with pytest.raises(SessionEnded):
            await api.get("/things")
    assert len(server.refreshes) == 1


@pytest.mark.parametrize(
    "failures",
    [
        [Failure(503, "0"), Failure(503, "0")],
        [Failure(429, "0", error="too_many_requests")],
        [Failure(network=True), Failure(502, None)],
        [Failure(504, "Thu, 01 Jan 1970 00:00:00 GMT")],  # an HTTP-date in the past: no wait
    ],
    ids=["503", "429", "network-then-502", "http-date"],
)
def test_unavailable_answers_are_retried_with_the_same_refresh_token(
    server: FakeAuthServer, clock: Clock, failures: list[Failure]
) -> None:
    """503/429/502/504 and network errors are retried with the SAME refresh token."""
    server.failures = list(failures)
    auth = make_auth(server, clock)
    clock.advance(900)
    with api_client(server, auth) as api:
        assert api.get("/things").status_code == 200
    assert server.refreshes == [refresh_token(0)] * (len(failures) + 1)


async def test_async_retries_use_the_same_refresh_token(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The asyncio driver follows the same retry rules."""
    server.failures = [Failure(503, "0"), Failure(network=True)]
    auth = make_auth(server, clock)
    clock.advance(900)
    async with async_api_client(server, auth) as api:
        assert (await api.get("/things")).status_code == 200
    assert server.refreshes == [refresh_token(0)] * 3


def test_retries_are_bounded(server: FakeAuthServer, clock: Clock) -> None:
    """After `attempts` tries the refresh gives up with TokenEndpointUnavailable."""
    server.failures = [Failure(503, "0")] * 10
    auth = make_auth(server, clock)
    clock.advance(900)
    with api_client(server, auth) as api, pytest.raises(TokenEndpointUnavailable) as raised:
        api.get("/things")
    assert raised.value.attempts == 4
    assert len(server.refreshes) == 4


def test_a_retry_after_longer_than_max_wait_gives_up_at_once(
    server: FakeAuthServer, clock: Clock
) -> None:
    """Retry-After: 3600 is not retried early against the server's wish: it ends the refresh."""
    server.failures = [Failure(503, "3600")]
    auth = make_auth(server, clock)
    clock.advance(900)
    with api_client(server, auth) as api, pytest.raises(TokenEndpointUnavailable) as raised:
        api.get("/things")
    assert raised.value.retry_after == 3600
    assert len(server.refreshes) == 1


def test_an_early_refresh_that_fails_keeps_using_the_unexpired_token(
    server: FakeAuthServer, clock: Clock
) -> None:
    """Ahead of expiry, an unavailable token endpoint does not fail the request: the current
    access token is still good, so it is sent."""
    server.failures = [Failure(503, "0")] * 4
    auth = make_auth(server, clock)
    clock.advance(890)  # due (skew 30 s) but not expired
    with api_client(server, auth) as api:
        assert api.get("/things").status_code == 200
    assert len(server.refreshes) == 4


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, b'{"error": "invalid_client", "error_description": "who?"}', "invalid_client"),
        (500, b"<html>oops</html>", "http_500"),
        (200, b'{"access_token": "a", "token_type": "mac"}', "invalid_response"),
        (200, b"[]", "invalid_response"),
        (200, b"x" * 70_000, "invalid_response"),
    ],
    ids=["invalid_client", "html-500", "not-bearer", "not-object", "oversized"],
)
def test_other_token_endpoint_errors_are_clear_and_not_retried(
    clock: Clock, server: FakeAuthServer, status: int, body: bytes, expected: str
) -> None:
    """Anything else the endpoint says is a TokenEndpointError naming it, tried once."""
    seen = []

    def token(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body)

    auth = KeyfobAuth(
        server.endpoint(),
        TokenSet(refresh_token=refresh_token(0)),
        clock=clock,
        token_client=httpx.Client(transport=httpx.MockTransport(token)),
    )
    with api_client(server, auth) as api, pytest.raises(TokenEndpointError) as raised:
        api.get("/things")
    assert raised.value.error == expected
    assert len(seen) == 1


def test_a_redirect_from_the_token_endpoint_is_not_followed(clock: Clock) -> None:
    """The refresh token goes to the token URL only, even if the client follows redirects."""
    seen: list[httpx.URL] = []

    def token(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(307, headers={"Location": "https://elsewhere.example/steal"})

    auth = KeyfobAuth(
        FakeAuthServer(clock=clock).endpoint(),
        TokenSet(refresh_token=refresh_token(0)),
        clock=clock,
        token_client=httpx.Client(transport=httpx.MockTransport(token), follow_redirects=True),
    )
    with httpx.Client(auth=auth) as api, pytest.raises(TokenEndpointError):
        api.get(f"{API}/x")
    assert [url.host for url in seen] == ["auth.example"]


def test_token_requests_never_carry_the_token_clients_own_auth(clock: Clock) -> None:
    """A token client with auth of its own (even this very KeyfobAuth) sends the refresh
    without it: no stray credentials at the token endpoint, no waiting on itself."""
    server = FakeAuthServer(clock=clock)
    token_client = httpx.Client(transport=httpx.MockTransport(server.handler))
    auth = KeyfobAuth(server.endpoint(), server.issue(), clock=clock, token_client=token_client)
    token_client.auth = auth
    clock.advance(900)
    with httpx.Client(transport=httpx.MockTransport(server.handler), auth=auth) as api:
        assert api.get(f"{API}/x").status_code == 200
    token_client.auth = ("someone", "their-password")
    clock.advance(900)
    with httpx.Client(transport=httpx.MockTransport(server.handler), auth=auth) as api:
        assert api.get(f"{API}/x").status_code == 200
    token_requests = [r for r in server.requests if r.url.host == "auth.example"]
    assert len(token_requests) == 2
    assert all("authorization" not in r.headers for r in token_requests)
