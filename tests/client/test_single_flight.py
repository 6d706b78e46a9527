"""Single flight: many concurrent requests with an expired access token cause exactly one
refresh — in threads (httpx.Client) and in asyncio tasks (httpx.AsyncClient) alike, and
when the refresh fails or waits out a 503, everybody shares that one outcome."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from keyfob.client import KeyfobAuth, SessionEnded

from .fakes import Clock, Failure, FakeAuthServer, refresh_token
from .test_auth import api_client, async_api_client, make_auth

N = 100


def _sync_burst(server: FakeAuthServer, auth: KeyfobAuth) -> list[int | str]:
    """N threads released together, each sending one request; their outcomes."""
    start = threading.Barrier(N)

    def one(api: httpx.Client) -> int | str:
        start.wait(timeout=30)
        try:
            return api.get("/things").status_code
        except Exception as exc:
            return type(exc).__name__

    with api_client(server, auth) as api, ThreadPoolExecutor(N) as pool:
        return list(pool.map(lambda _: one(api), range(N)))


async def _async_burst(server: FakeAuthServer, auth: KeyfobAuth) -> list[int | str]:
    async def one(api: httpx.AsyncClient) -> int | str:
        try:
            return (await api.get("/things")).status_code
        except Exception as exc:
            return type(exc).__name__

    async with async_api_client(server, auth) as api:
        return list(await asyncio.gather(*(one(api) for _ in range(N))))


def test_threads_with_an_expired_token_cause_exactly_one_refresh(
    server: FakeAuthServer, clock: Clock
) -> None:
    """100 threads, expired token, a slow token endpoint: one refresh, 100 successes."""
    server.delay = 0.2
    auth = make_auth(server, clock)
    clock.advance(901)
    assert _sync_burst(server, auth) == [200] * N
    assert server.refreshes == [refresh_token(0)]


async def test_tasks_with_an_expired_token_cause_exactly_one_refresh(
    server: FakeAuthServer, clock: Clock
) -> None:
    """100 asyncio tasks, expired token, a slow token endpoint: one refresh."""
    server.delay = 0.2
    auth = make_auth(server, clock)
    clock.advance(901)
    assert await _async_burst(server, auth) == [200] * N
    assert server.refreshes == [refresh_token(0)]


def test_threads_refused_with_401_cause_exactly_one_refresh(
    server: FakeAuthServer, clock: Clock
) -> None:
    """100 threads whose unexpired token the API refuses (401 invalid_token): one refresh,
    and each request is sent once more, with the new token."""
    server.delay = 0.2
    server.api_min_generation = 1
    auth = make_auth(server, clock)
    assert _sync_burst(server, auth) == [200] * N
    assert server.refreshes == [refresh_token(0)]
    api_calls = [q for q in server.requests if q.url.host == "api.example"]
    assert len(api_calls) == 2 * N


async def test_tasks_refused_with_401_cause_exactly_one_refresh(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The same for asyncio tasks."""
    server.delay = 0.2
    server.api_min_generation = 1
    auth = make_auth(server, clock)
    assert await _async_burst(server, auth) == [200] * N
    assert server.refreshes == [refresh_token(0)]


def test_a_503_during_a_burst_is_retried_by_the_one_flight(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The token endpoint answers 503 twice: still one flight, three attempts, all succeed."""
    server.failures = [Failure(503, "0"), Failure(503, "0")]
    server.delay = 0.05
    auth = make_auth(server, clock)
    clock.advance(901)
    assert _sync_burst(server, auth) == [200] * N
    assert server.refreshes == [refresh_token(0)] * 3


async def test_a_503_during_an_async_burst_is_retried_by_the_one_flight(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The same for asyncio tasks."""
    server.failures = [Failure(503, "0"), Failure(network=True)]
    server.delay = 0.05
    auth = make_auth(server, clock)
    clock.advance(901)
    assert await _async_burst(server, auth) == [200] * N
    assert server.refreshes == [refresh_token(0)] * 3


def test_invalid_grant_during_a_burst_is_asked_once_and_ends_every_request(
    server: FakeAuthServer, clock: Clock
) -> None:
    """A revoked session: one refresh attempt, and all 100 requests raise SessionEnded."""
    server.revoked = True
    server.delay = 0.1
    auth = make_auth(server, clock)
    clock.advance(901)
    assert _sync_burst(server, auth) == ["SessionEnded"] * N
    assert len(server.refreshes) == 1


async def test_cancelling_the_request_that_started_the_refresh_does_not_strand_the_others(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The refresh runs in its own task: the requester that started it may be cancelled,
    the others still get the new token, and it is saved."""
    server.delay = 0.3
    saved: list[str] = []
    auth = make_auth(server, clock, token_saver=lambda t: saved.append(t.refresh_token))
    clock.advance(901)
    async with async_api_client(server, auth) as api:
        first = asyncio.create_task(api.get("/things"))
        await asyncio.sleep(0.05)  # the first request is now leading the refresh
        others = [asyncio.create_task(api.get("/things")) for _ in range(5)]
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert [r.status_code for r in await asyncio.gather(*others)] == [200] * 5
    assert server.refreshes == [refresh_token(0)]
    assert saved == [refresh_token(1)]


def test_one_auth_shared_by_threads_and_an_event_loop_refreshes_once(
    server: FakeAuthServer, clock: Clock
) -> None:
    """The flight is shared across threads and event loops: a sync burst and an async
    burst on another thread's loop, together, still refresh once."""
    server.delay = 0.2
    auth = make_auth(server, clock)
    async_results: list[int | str] = []

    def run_async_burst() -> None:
        async def main() -> None:
            async with httpx.AsyncClient(
                transport=httpx.MockTransport(server.async_handler), auth=auth
            ) as api:

                async def one() -> int | str:
                    try:
                        return (await api.get("https://api.example/x")).status_code
                    except Exception as exc:
                        return type(exc).__name__

                async_results.extend(await asyncio.gather(*(one() for _ in range(20))))

        asyncio.run(main())

    clock.advance(901)
    thread = threading.Thread(target=run_async_burst)
    thread.start()
    sync_results = _sync_burst(server, auth)
    thread.join(timeout=30)
    assert sync_results == [200] * N
    assert async_results == [200] * 20
    assert server.refreshes == [refresh_token(0)]


def test_session_ended_is_raised_by_later_threads_without_a_refresh(
    server: FakeAuthServer, clock: Clock
) -> None:
    """Once ended, requests raise at once: no second visit to the token endpoint."""
    server.revoked = True
    auth = make_auth(server, clock)
    clock.advance(901)
    with api_client(server, auth) as api:
        for _ in range(3):
            with pytest.raises(SessionEnded):
                api.get("/things")
    assert len(server.refreshes) == 1
