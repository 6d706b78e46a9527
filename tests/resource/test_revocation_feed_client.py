"""The revocation feed's client loop against scripted answers (httpx.MockTransport)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from keyfob.resource_server.feed import FeedSettings, RevocationFeedClient

URL = "https://auth.example/oauth/revocations"
FAST = FeedSettings("api", "s3cret", wait=0.2, min_backoff=0.01, max_backoff=0.05)


class Script:
    """Answers requests from a list (the last one repeats) and records them."""

    def __init__(self, *answers: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)


def ok(revocations: object, cursor: str = "100.5") -> Callable[[httpx.Request], httpx.Response]:
    body = {"revocations": revocations, "cursor": cursor, "access_ttl": 900}
    return lambda _: httpx.Response(200, json=body)


def raw(status: int, content: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(status, content=content)


def down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


class Feed:
    def __init__(self, script: Script, settings: FeedSettings = FAST) -> None:
        self.seen: list[tuple[str, float]] = []
        self.client = RevocationFeedClient(
            settings,
            URL,
            lambda sid, at: self.seen.append((sid, at)),
            transport=httpx.MockTransport(script),
        )


@pytest.fixture
def feeds() -> Iterator[list[Feed]]:
    made: list[Feed] = []
    yield made
    for feed in made:
        feed.client.close()


def start(feeds: list[Feed], script: Script, settings: FeedSettings = FAST) -> Feed:
    feed = Feed(script, settings)
    feeds.append(feed)
    feed.client.start()
    return feed


def until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_entries_reach_the_callback_and_the_cursor_is_passed_on(feeds: list[Feed]) -> None:
    script = Script(ok([{"sid": "a", "revoked_at": 99.0}]), ok([], "101"))
    feed = start(feeds, script)
    until(lambda: len(script.requests) >= 3)
    assert feed.seen[0] == ("a", 99.0)
    first, second, third = script.requests[:3]
    assert "since" not in first.url.params  # the first request catches up at once
    assert second.url.params["since"] == "100.5" and second.url.params["wait"] == "0.2"
    assert third.url.params["since"] == "101"
    # HTTP Basic with the client's credentials (RFC 6749 §2.3.1).
    assert first.headers["authorization"] == httpx.BasicAuth("api", "s3cret")._auth_header
    health = feed.client.health()
    assert health.connected and health.lag is not None and health.last_error is None


@pytest.mark.parametrize(
    "entry",
    [
        "sid",
        None,
        [],
        {"sid": 5, "revoked_at": 1.0},
        {"sid": "", "revoked_at": 1.0},
        {"sid": "x" * 129, "revoked_at": 1.0},
        {"sid": "a", "revoked_at": "1"},
        {"sid": "a", "revoked_at": True},
        {"sid": "a"},
    ],
)
def test_malformed_entries_are_skipped_and_the_rest_kept(feeds: list[Feed], entry: object) -> None:
    script = Script(ok([entry, {"sid": "good", "revoked_at": 5}]), ok([]))
    feed = start(feeds, script)
    until(lambda: len(script.requests) >= 2)
    assert feed.seen == [("good", 5.0)]
    assert feed.client.health().skipped_entries == 1


@pytest.mark.parametrize(
    "answer",
    [
        raw(200, b"not json"),
        raw(200, b"[1, 2]"),
        raw(200, b'{"revocations": {}, "cursor": "1"}'),
        raw(200, b'{"revocations": [], "cursor": 7}'),
        raw(200, b'{"revocations": [], "cursor": ""}'),
        raw(200, b'{"revocations": [], "cursor": "' + b"9" * 65 + b'"}'),
        raw(200, b"\xff\xfe"),
        raw(401, b'{"error": "invalid_client"}'),
        raw(502, b"<html>bad gateway</html>"),
        down,
    ],
)
def test_bad_answers_are_errors_and_the_loop_keeps_running(
    feeds: list[Feed], answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    script = Script(answer, answer, ok([{"sid": "later", "revoked_at": 1}]), ok([]))
    feed = start(feeds, script)
    until(lambda: feed.seen == [("later", 1.0)] and len(script.requests) >= 4)
    assert len(script.requests) >= 3
    assert feed.client.health().connected


def test_errors_back_off_up_to_the_bound_and_show_in_health(feeds: list[Feed]) -> None:
    script = Script(down)
    settings = FeedSettings("api", "s", wait=0.2, min_backoff=0.05, max_backoff=0.1)
    feed = start(feeds, script, settings)
    time.sleep(0.6)
    # Backing off: 0.05, 0.1, 0.1, ... -> a handful of attempts, not a busy loop.
    assert 2 <= len(script.requests) <= 10
    health = feed.client.health()
    assert not health.connected and health.lag is None
    assert health.last_error is not None and "ConnectError" in health.last_error
    assert feed.client.stale()


def test_close_ends_a_long_poll_in_flight_promptly(feeds: list[Feed]) -> None:
    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        return httpx.Response(200, json={"revocations": [], "cursor": "1"})

    script = Script(hang)
    feed = start(feeds, script)
    until(lambda: len(script.requests) == 1)
    assert feed.client._thread is not None
    started = time.monotonic()
    release.set()  # a mock transport cannot be interrupted; a real socket is closed
    feed.client.close()
    assert time.monotonic() - started < 5
    assert not feed.client._thread.is_alive()
    assert len(script.requests) == 1


def test_the_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="mode"):
        FeedSettings("a", "b", mode="fail-sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wait"):
        FeedSettings("a", "b", wait=60)
    with pytest.raises(ValueError, match="backoff"):
        FeedSettings("a", "b", min_backoff=5, max_backoff=1)
    assert FeedSettings("a", "b", wait=20).stale_after == 45


def test_after_each_good_answer_the_owner_may_prune() -> None:
    calls: list[int] = []
    script = Script(ok([{"sid": "a", "revoked_at": 1}]), raw(500, b""), ok([]))
    client = RevocationFeedClient(
        FAST,
        URL,
        lambda sid, at: calls.append(0),
        after_answer=lambda: calls.append(1),
        transport=httpx.MockTransport(script),
    )
    client.start()
    try:
        until(lambda: len(script.requests) >= 4)
    finally:
        client.close()
    # The entry then a prune for the first answer; nothing for the 500; a prune for the
    # third (the fourth request starts only once the third answer is handled).
    assert calls[:3] == [0, 1, 1]
