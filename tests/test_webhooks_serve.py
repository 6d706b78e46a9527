"""Webhooks from real ``keyfob serve`` processes to a receiver on 127.0.0.1.

A replayed refresh token reaches the receiver as a signed ``session.reuse_detected``;
a receiver that answers 500 is retried; a receiver that hangs does not hold up the
refresh that caused its event; two instances on one PostgreSQL database deliver each
message once. Every wait is bounded; nothing here is a speed target.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook

from keyfob import open_store
from keyfob.cli import cli
from keyfob.settings import SETTINGS
from keyfob.store.webhook_records import DeliveryStatus
from keyfob.webhooks.endpoints import add_endpoint
from keyfob.webhooks.messages import ping_message
from keyfob.webhooks.sealing import derive_sealing_key
from tests.multi.conftest import fresh_database, running_cluster, settings_for
from tests.server.uvicorn_process import SECRET, free_port
from tests.services import PostgresServer

from .webhook_receiver import Received, Receiver

pytestmark = [pytest.mark.slow]

PASSWORD = "correct horse battery staple"
HTTP_TIMEOUT = 15.0


class KeyfobServe:
    """``keyfob serve`` in a process of its own on a free port of 127.0.0.1."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> KeyfobServe:
        command = [sys.executable, "-m", "keyfob.cli", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port)]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keyfob serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/.well-known/jwks.json", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"keyfob serve did not start:\n{self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """KEYFOB_* for the server process and for the CLI run in this process."""
    values = {s.env: "" for s in SETTINGS}
    values |= {
        "KEYFOB_STORE_URL": f"sqlite:///{tmp_path / 'keyfob.db'}",
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_PASSWORD_PROFILE": "cheapest",
        "KEYFOB_SQLITE_SYNCHRONOUS": "normal",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **values}


def add_webhook(url: str, *events: str) -> str:
    """``keyfob webhooks add``; the secret it printed."""
    flags = [arg for e in events for arg in ("--event", e)]
    result = CliRunner().invoke(cli, ["webhooks", "add", url, *flags], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = re.search(r"whsec_\S+", result.output)
    assert found is not None
    return found.group(0)


def login(client: httpx.Client, name: str) -> dict[str, Any]:
    r = client.post("/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = client.post(
        "/auth/login", json={"username": name, "password": PASSWORD, "transport": "body"}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def refresh(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/auth/refresh", json={"refresh_token": token})


def sid_of(access_token: str) -> str:
    segment = access_token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["sid"])


def replay(client: httpx.Client, session: dict[str, Any]) -> None:
    """Rotate twice, then present the first token again: reuse (spec §3)."""
    first = session["refresh_token"]
    second = refresh(client, first).json()["refresh_token"]
    assert refresh(client, second).status_code == 200
    reused = refresh(client, first)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def of_type(type_: str) -> Any:
    return lambda r: json.loads(r.body)["type"] == type_


def test_a_replayed_refresh_token_reaches_the_receiver_signed(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The receiver gets session.reuse_detected for the session, verified with the
    secret that `keyfob webhooks add` printed, and the delivery log says delivered."""
    with Receiver() as receiver:
        secret = add_webhook(receiver.url)
        with (
            KeyfobServe(env, tmp_path / "serve.log") as server,
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client,
        ):
            session = login(client, "alice")
            replay(client, session)
            [got] = receiver.wait_for(1, where=of_type("session.reuse_detected"))
            body = Webhook(secret).verify(got.body, got.headers)
            deadline = time.monotonic() + 15
            while "delivered" not in deliveries() and time.monotonic() < deadline:
                time.sleep(0.1)
    assert body["data"]["sid"] == sid_of(session["access_token"])
    assert body["data"]["detail"].startswith("rule=older_token revoked=1")
    assert got.headers["webhook-id"].startswith("msg_")
    assert re.search(r"session\.reuse_detected\s+delivered\s+1\s+\S+ \S+\s+200", deliveries())


def deliveries() -> str:
    return CliRunner().invoke(cli, ["webhooks", "deliveries"], catch_exceptions=False).output


def test_a_receiver_answering_500_gets_the_message_again(
    env: dict[str, str], tmp_path: Path
) -> None:
    """500 then 200: the same webhook-id twice, after the first backoff (about 5 s)."""
    with Receiver([500, 200]) as receiver:
        secret = add_webhook(receiver.url)
        with (
            KeyfobServe(env, tmp_path / "serve.log") as server,
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client,
        ):
            replay(client, login(client, "bob"))
            first, second = receiver.wait_for(2, timeout=30)
    assert first.message_id == second.message_id
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"]) + 3
    Webhook(secret).verify(second.body, second.headers)
    assert re.search(r"session\.reuse_detected\s+delivered\s+2\s", deliveries())


def test_a_hanging_receiver_never_holds_up_a_refresh(env: dict[str, str], tmp_path: Path) -> None:
    """While the worker waits on a receiver that does not answer, refreshes and the
    reuse answer come back; the reuse webhook is sent once the receiver answers again."""
    db = env["KEYFOB_STORE_URL"].removeprefix("sqlite:///")
    with Receiver() as receiver:
        add_webhook(receiver.url, "login.succeeded", "session.reuse_detected")
        receiver.hang()
        with (
            KeyfobServe(env, tmp_path / "serve.log") as server,
            httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as client,
        ):
            session = login(client, "carol")
            receiver.wait_for(1, where=of_type("login.succeeded"))
            replay(client, session)
            # Answered, and the worker is still inside the login webhook's first attempt.
            assert attempts_of(db, "login.succeeded") == [0]
            assert receiver.holding == 1
            receiver.release()
            receiver.wait_for(1, where=of_type("session.reuse_detected"))


def attempts_of(db: str, event_type: str) -> list[int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT attempts FROM webhook_deliveries WHERE event_type = ?", (event_type,)
        ).fetchall()
    return [int(n) for (n,) in rows]


@pytest.fixture
def database(postgres_server: PostgresServer) -> str:
    return fresh_database(postgres_server)


@pytest.mark.postgres
@pytest.mark.shared_database
def test_two_instances_on_postgresql_deliver_each_message_once(
    database: str, tmp_path: Path
) -> None:
    """Forty messages in the outbox of two running instances: forty requests in all,
    each message once, each delivery one attempt."""
    count = 40
    with Receiver() as receiver:

        async def enqueue() -> None:
            settings = settings_for(database)
            store = open_store(database, settings=settings)
            await store.open()
            try:
                await add_endpoint(
                    store,
                    receiver.url,
                    keys=[derive_sealing_key(SECRET.encode())],
                    now=time.time(),
                    event_types=["webhook.test"],
                )
                for _ in range(count):
                    await store.enqueue_webhook(ping_message(time.time()), now=time.time())
            finally:
                await store.close()

        async def finished() -> list[tuple[DeliveryStatus, int]]:
            store = open_store(database, settings=settings_for(database))
            await store.open()
            try:
                found = await store.list_webhook_deliveries(limit=1000)
            finally:
                await store.close()
            return [(d.status, d.attempts) for d in found]

        with running_cluster(tmp_path, database, 2):
            asyncio.run(enqueue())
            got: list[Received] = receiver.wait_for(count, timeout=60)
            deadline = time.monotonic() + 30
            while set(statuses := asyncio.run(finished())) != {(DeliveryStatus.DELIVERED, 1)}:
                assert time.monotonic() < deadline, statuses
                time.sleep(0.2)
            got = list(receiver.received)
    assert len(statuses) == count
    assert len(got) == count
    assert len({r.message_id for r in got}) == count
