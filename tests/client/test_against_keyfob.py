"""keyfob.client against a real ``keyfob serve`` process (uvicorn, SQLite), through a
counting relay that tells how many refreshes reached the server.

Exactly-one-refresh is checked on the server's side twice over: the relay counts the
refresh requests that reached it, and the servers run with ``KEYFOB_GRACE=0``, so a second
refresh with the same token would be reuse — the session would be revoked and the final
refresh below would fail. The refresh token's own rotation counter (spec: design.md,
"Refresh tokens") says the session rotated exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from keyfob.client import (
    FileTokenStore,
    KeyfobAuth,
    KeyfobEndpoint,
    LoginFailed,
    OAuthTokenEndpoint,
    RetryPolicy,
    SessionEnded,
    TokenSet,
)

from ..relay import PausableRelay
from ..server.uvicorn_process import UvicornProcess
from .fakes import Clock
from .proxy import CountingProxy

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
N = 100


@pytest.fixture(scope="module")
def keyfob(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    """keyfob with no grace window: any second use of a refresh token revokes the session."""
    with UvicornProcess(tmp_path_factory.mktemp("keyfob"), env={"KEYFOB_GRACE": "0"}) as s:
        yield s


@pytest.fixture
def proxy(keyfob: UvicornProcess) -> Iterator[CountingProxy]:
    with CountingProxy(keyfob.url) as p:
        yield p


_users = iter(range(10_000))


def new_user(server_url: str) -> str:
    username = f"user{next(_users)}"
    r = httpx.post(f"{server_url}/auth/register", json={"username": username, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return username


def rotation_counter(refresh_token: str) -> int:
    """The counter inside a keyfob refresh token: how many times its session rotated."""
    raw = base64.urlsafe_b64decode(refresh_token.removeprefix("kfrt_") + "==")
    return int.from_bytes(raw[33:41], "big")


def still_alive(server_url: str, tokens: TokenSet) -> bool:
    """The session takes its current refresh token (so no reuse revoked it)."""
    r = httpx.post(f"{server_url}/auth/refresh", json={"refresh_token": tokens.refresh_token})
    return r.status_code == 200


def test_login_refresh_ahead_of_expiry_and_the_token_file(
    keyfob: UvicornProcess, proxy: CountingProxy, tmp_path: Path
) -> None:
    """Log in with KeyfobAuth.login, call protected routes, refresh ahead of expiry through
    /auth/refresh; the 0600 file holds each new token before it is used, and no request
    but the refreshes carried a refresh token."""
    clock = Clock(time.time())
    store = FileTokenStore(tmp_path / "token.json")
    auth = KeyfobAuth.login(
        proxy.url, new_user(keyfob.url), PASSWORD, token_saver=store, clock=clock
    )
    first = store.load()
    assert first is not None and first.refresh_token == auth.tokens.refresh_token
    assert (tmp_path / "token.json").stat().st_mode & 0o777 == 0o600
    with httpx.Client(base_url=proxy.url, auth=auth) as api:
        assert api.get("/auth/me").status_code == 200
        clock.advance(900)
        me = api.get("/auth/me")
        assert api.get("/auth/sessions").status_code == 200
        assert api.get("/.well-known/jwks.json?x=1").status_code == 200
    assert me.status_code == 200
    assert proxy.count("/auth/refresh") == 1
    saved = store.load()
    assert saved is not None and saved.refresh_token == auth.tokens.refresh_token
    assert rotation_counter(saved.refresh_token) == rotation_counter(first.refresh_token) + 1
    # The refresh tokens travelled to /auth/refresh (and the login's answer) only.
    elsewhere = [text for path, text in proxy.wire if path not in {"/auth/refresh"}]
    assert len(elsewhere) == 5  # login, 2 x /auth/me, sessions, jwks
    for token in (first.refresh_token, saved.refresh_token):
        assert not any(token in text for text in elsewhere)
    assert still_alive(keyfob.url, auth.tokens)


async def test_the_rfc_6749_token_endpoint_with_an_async_client(
    keyfob: UvicornProcess, proxy: CountingProxy
) -> None:
    """alogin, then refresh through /oauth/token (grant_type=refresh_token, client_id)."""
    clock = Clock(time.time())
    login = await KeyfobAuth.alogin(keyfob.url, new_user(keyfob.url), PASSWORD, clock=clock)
    # A session from /auth/login belongs to the built-in first-party client "keyfob": the
    # token endpoint refreshes it for that client only (a refresh token is bound to it).
    endpoint = OAuthTokenEndpoint(f"{proxy.url}/oauth/token", client_id="keyfob")
    auth = KeyfobAuth(endpoint, login.tokens, clock=clock)
    clock.advance(900)
    async with httpx.AsyncClient(base_url=keyfob.url, auth=auth) as api:
        assert (await api.get("/auth/me")).status_code == 200
    assert proxy.count("/oauth/token") == 1
    assert b"grant_type=refresh_token" in proxy.bodies["/oauth/token"][0]
    assert still_alive(keyfob.url, auth.tokens)


def test_a_wrong_password_is_login_failed(keyfob: UvicornProcess) -> None:
    """keyfob's invalid_grant on login is LoginFailed with its description."""
    with pytest.raises(LoginFailed) as raised:
        KeyfobAuth.login(keyfob.url, new_user(keyfob.url), "not the password at all")
    assert raised.value.error == "invalid_grant"


def test_100_threads_with_an_expired_token_cause_one_refresh_on_the_server(
    keyfob: UvicornProcess, proxy: CountingProxy
) -> None:
    """httpx.Client in 100 threads released together past expiry: one /auth/refresh
    reached keyfob, the session rotated once and is alive (grace 0: a duplicate would
    have revoked it)."""
    clock = Clock(time.time())
    auth = KeyfobAuth.login(proxy.url, new_user(keyfob.url), PASSWORD, clock=clock)
    before = rotation_counter(auth.tokens.refresh_token)
    clock.advance(900)
    start = threading.Barrier(N)
    limits = httpx.Limits(max_connections=N)
    with httpx.Client(base_url=keyfob.url, auth=auth, limits=limits, timeout=30) as api:

        def one(_: int) -> int:
            start.wait(timeout=30)
            return api.get("/auth/me").status_code

        with ThreadPoolExecutor(N) as pool:
            statuses = list(pool.map(one, range(N)))
    assert statuses == [200] * N
    assert proxy.count("/auth/refresh") == 1
    assert rotation_counter(auth.tokens.refresh_token) == before + 1
    assert still_alive(keyfob.url, auth.tokens)


async def test_100_tasks_with_an_expired_token_cause_one_refresh_on_the_server(
    keyfob: UvicornProcess, proxy: CountingProxy
) -> None:
    """httpx.AsyncClient in 100 asyncio tasks past expiry: one /auth/refresh on the server."""
    clock = Clock(time.time())
    auth = await KeyfobAuth.alogin(proxy.url, new_user(keyfob.url), PASSWORD, clock=clock)
    before = rotation_counter(auth.tokens.refresh_token)
    clock.advance(900)
    limits = httpx.Limits(max_connections=N)
    async with httpx.AsyncClient(base_url=keyfob.url, auth=auth, limits=limits, timeout=30) as api:
        responses = await asyncio.gather(*(api.get("/auth/me") for _ in range(N)))
    assert [r.status_code for r in responses] == [200] * N
    assert proxy.count("/auth/refresh") == 1
    assert rotation_counter(auth.tokens.refresh_token) == before + 1
    assert still_alive(keyfob.url, auth.tokens)


def test_a_503_with_retry_after_is_waited_out_with_the_same_token_by_one_flight(
    keyfob: UvicornProcess, proxy: CountingProxy
) -> None:
    """The token endpoint answers 503 + Retry-After: 1 twice; 100 threads wait for one
    flight that retries after each wait with the SAME refresh token, then succeeds."""
    clock = Clock(time.time())
    auth = KeyfobAuth.login(proxy.url, new_user(keyfob.url), PASSWORD, clock=clock)
    presented = auth.tokens.refresh_token
    proxy.refuse_next("/auth/refresh", times=2, status=503, retry_after="1")
    clock.advance(900)
    start = threading.Barrier(N)
    with httpx.Client(base_url=keyfob.url, auth=auth, timeout=30) as api:

        def one(_: int) -> int:
            start.wait(timeout=30)
            return api.get("/auth/me").status_code

        began = time.monotonic()
        with ThreadPoolExecutor(N) as pool:
            statuses = list(pool.map(one, range(N)))
        waited = time.monotonic() - began
    assert statuses == [200] * N
    assert waited >= 2.0  # Retry-After: 1, twice
    assert proxy.count("/auth/refresh") == 3
    assert all(presented.encode() in body for body in proxy.bodies["/auth/refresh"])
    assert still_alive(keyfob.url, auth.tokens)


def test_a_revoked_session_raises_session_ended(
    keyfob: UvicornProcess, proxy: CountingProxy
) -> None:
    """After logout elsewhere, the next refresh gets invalid_grant: SessionEnded with
    keyfob's description, asked once, then raised without asking."""
    clock = Clock(time.time())
    auth = KeyfobAuth.login(proxy.url, new_user(keyfob.url), PASSWORD, clock=clock)
    r = httpx.post(f"{keyfob.url}/auth/logout", json={"refresh_token": auth.tokens.refresh_token})
    assert r.status_code == 204
    clock.advance(900)
    with httpx.Client(base_url=keyfob.url, auth=auth) as api:
        with pytest.raises(SessionEnded) as raised:
            api.get("/auth/me")
        with pytest.raises(SessionEnded):
            api.get("/auth/me")
    assert raised.value.error == "invalid_grant"
    assert raised.value.description
    assert proxy.count("/auth/refresh") == 1


def test_100_threads_refused_with_401_cause_one_refresh(tmp_path: Path) -> None:
    """keyfob refuses the expired access token (401 invalid_token) that the client's clock
    still thinks fresh: one refresh on the server, every request retried once and served."""
    env = {"KEYFOB_GRACE": "0", "KEYFOB_ACCESS_TTL": "2", "KEYFOB_LEEWAY": "0"}
    with UvicornProcess(tmp_path, env=env) as server, CountingProxy(server.url) as proxy:
        clock = Clock(time.time())  # frozen: the client never sees the token due
        auth = KeyfobAuth.login(proxy.url, new_user(server.url), PASSWORD, clock=clock)
        time.sleep(2.5)
        start = threading.Barrier(N)
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as api:

            def one(_: int) -> int:
                start.wait(timeout=30)
                return api.get("/auth/me").status_code

            with ThreadPoolExecutor(N) as pool:
                statuses = list(pool.map(one, range(N)))
        assert statuses == [200] * N
        assert proxy.count("/auth/refresh") == 1
        assert still_alive(server.url, auth.tokens)


def test_a_refresh_whose_answer_is_lost_is_retried_and_gets_the_same_successor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A network partition during the refresh: the first attempt times out while the relay
    holds it; the retry (same token) and the held request both reach keyfob when the
    partition heals, and the grace window hands the retry the identical successor, so the
    session lives on (spec §3, §4)."""
    with UvicornProcess(tmp_path) as server, PausableRelay("127.0.0.1", server.port) as relay:
        relay_url = f"http://127.0.0.1:{relay.port}"
        username = new_user(server.url)
        login = KeyfobAuth.login(server.url, username, PASSWORD)
        clock = Clock(time.time())
        auth = KeyfobAuth(
            KeyfobEndpoint(relay_url),
            login.tokens,
            clock=clock,
            timeout=1.0,
            retry=RetryPolicy(attempts=3, backoff=0.5),
        )
        before = rotation_counter(login.tokens.refresh_token)
        clock.advance(900)
        caplog.set_level(logging.INFO, logger="keyfob.client")
        relay.pause()
        healer = threading.Timer(1.8, relay.resume)  # after the first attempt timed out
        healer.start()
        try:
            with httpx.Client(base_url=server.url, auth=auth) as api:
                assert api.get("/auth/me").status_code == 200
        finally:
            healer.cancel()
            relay.resume()
        assert "failed (ReadTimeout" in caplog.text  # the first answer was lost
        assert rotation_counter(auth.tokens.refresh_token) == before + 1
        assert still_alive(server.url, auth.tokens)
