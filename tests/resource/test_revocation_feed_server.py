"""The revocation feed end to end: a real ``keyfob serve`` process, a confidential client
registered with the CLI, and a :class:`RemoteVerifier` following the feed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from keyfob.exceptions import AccessTokenRevoked, IssuerUnavailable
from keyfob.resource_server import FeedSettings, RemoteVerifier
from tests.server.uvicorn_process import UvicornProcess

PASSWORD = "correct horse battery staple"
pytestmark = pytest.mark.slow


@dataclass
class Keyfob:
    url: str
    client_id: str
    secret: str
    public_id: str


def _cli(server: UvicornProcess, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "keyfob.cli", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@pytest.fixture(scope="module")
def keyfob(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyfob]:
    directory = tmp_path_factory.mktemp("feed")
    with UvicornProcess(directory, serve=True) as server:
        out = _cli(server, "clients", "add", "api", "--client-id", "api")
        secret = next(
            line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client_secret")
        )
        _cli(server, "clients", "add", "spa", "--client-id", "spa", "--auth-method", "none")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            r = client.post("/auth/register", json={"username": "ann", "password": PASSWORD})
            assert r.status_code == 201, r.text
        yield Keyfob(server.url, "api", secret, "spa")


def _login(keyfob: Keyfob) -> tuple[str, str]:
    with httpx.Client(base_url=keyfob.url, timeout=10) as client:
        r = client.post(
            "/auth/login", json={"username": "ann", "password": PASSWORD, "transport": "body"}
        )
        assert r.status_code == 200, r.text
        return r.json()["access_token"], r.json()["refresh_token"]


def _wait(predicate: object, seconds: float = 5.0) -> float:
    """Poll until ``predicate()`` is true; a hang guard, not a speed assertion."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < seconds, "timed out"
        time.sleep(0.01)
    return time.monotonic() - start


def _refused(verifier: RemoteVerifier, token: str) -> bool:
    try:
        verifier.verify_access_token(token)
    except AccessTokenRevoked:
        return True
    return False


def test_a_logout_is_refused_remotely_within_the_bound(keyfob: Keyfob) -> None:
    feed = FeedSettings(keyfob.client_id, keyfob.secret, wait=20)
    with RemoteVerifier(keyfob.url, revocation_feed=feed) as verifier:
        _wait(lambda: verifier.health().feed is not None and verifier.health().feed.connected)  # type: ignore[union-attr]
        access, refresh = _login(keyfob)
        assert verifier.verify_access_token(access).user_id
        # The feed is now waiting in a long-poll: the logout must wake it.
        time.sleep(0.3)
        start = time.monotonic()
        with httpx.Client(base_url=keyfob.url, timeout=10) as client:
            assert client.post("/auth/logout", json={"refresh_token": refresh}).status_code in (
                200,
                204,
            )
        _wait(lambda: _refused(verifier, access))
        latency = time.monotonic() - start  # from the logout request to the refusal
        print(f"revocation seen by the remote verifier after {latency * 1000:.0f} ms")
        health = verifier.health().feed
        assert health is not None and health.connected and health.mode == "fail-open"


def test_the_feed_needs_a_confidential_client(keyfob: Keyfob) -> None:
    with httpx.Client(base_url=keyfob.url, timeout=10) as client:
        for auth in (None, (keyfob.public_id, ""), (keyfob.client_id, "wrong")):
            r = client.get("/oauth/revocations", auth=auth)
            assert r.status_code == 401, r.text
            assert r.json()["error"] == "invalid_client"
        ok = client.get("/oauth/revocations", auth=(keyfob.client_id, keyfob.secret))
        assert ok.status_code == 200
        assert ok.headers["cache-control"] == "no-store"
        body = ok.json()
        assert isinstance(body["cursor"], str) and body["access_ttl"] > 0
        for query in ("since=abc", "since=-1", "since=nan", "wait=x", "since=1&since=2", "x=1"):
            r = client.get(f"/oauth/revocations?{query}", auth=(keyfob.client_id, keyfob.secret))
            assert r.status_code == 400, query
            assert r.json()["error"] == "invalid_request"
        document = client.get("/.well-known/oauth-authorization-server").json()
        assert document["keyfob_revocation_feed_endpoint"] == keyfob.url + "/oauth/revocations"
        assert "/oauth/revocations" in client.get("/openapi.json").json()["paths"]


def test_the_long_poll_waits_then_answers_with_the_same_shape(keyfob: Keyfob) -> None:
    auth = (keyfob.client_id, keyfob.secret)
    with httpx.Client(base_url=keyfob.url, timeout=10, auth=auth) as client:
        cursor = client.get("/oauth/revocations").json()["cursor"]
        start = time.monotonic()
        r = client.get("/oauth/revocations", params={"since": cursor, "wait": "1"})
        elapsed = time.monotonic() - start
        assert r.status_code == 200 and elapsed >= 0.9
        assert r.json()["cursor"] >= cursor


def test_fail_closed_answers_503_once_the_feed_is_down(tmp_path: Path) -> None:
    with UvicornProcess(tmp_path, serve=True) as server:
        out = _cli(server, "clients", "add", "api", "--client-id", "api")
        secret = next(
            line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client_secret")
        )
        with httpx.Client(base_url=server.url, timeout=10) as client:
            client.post("/auth/register", json={"username": "ann", "password": PASSWORD})
        access, _ = _login(Keyfob(server.url, "api", secret, ""))
        feed = FeedSettings(
            "api", secret, mode="fail-closed", wait=0.5, min_backoff=0.1, max_backoff=0.2
        )
        with RemoteVerifier(server.url, revocation_feed=feed) as verifier:
            _wait(lambda: verifier.health().feed.connected)  # type: ignore[union-attr]
            assert verifier.verify_access_token(access).user_id
            server.stop()
            # Down past the bound (2 x wait + 5 s): every token is refused with 503.
            with pytest.raises(IssuerUnavailable) as caught:
                _wait_for_503(verifier, access, seconds=15)
            assert caught.value.status_code == 503 and "revocation feed" in str(caught.value)
            health = verifier.health().feed
            assert health is not None and not health.connected and health.last_error


def _wait_for_503(verifier: RemoteVerifier, token: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        verifier.verify_access_token(token)  # raises IssuerUnavailable once stale
        time.sleep(0.2)
