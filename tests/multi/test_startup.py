"""``keyfob serve`` starting against PostgreSQL: how many round trips before it serves.

Against a database 100 ms away every sequential round trip at start-up costs 100 ms, and
a restart after a crash eats into the grace window (docs/scaling.md, "Start-up"). The
time is measured by bench/startup_remote_pg.py; here the round trips are counted, by
the test suite's relay between the server process and PostgreSQL, so the count cannot
creep back up unnoticed (before the start-up was batched it was 45 over 4 connections).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from tests.relay import PausableRelay
from tests.server.uvicorn_process import SECRET
from tests.services import PostgresServer, free_port

from .conftest import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.shared_database]

#: The most round trips (all connections together) a start-up on a migrated database
#: with a signing key may wait for: per connection TLS negotiation and start-up (2), the
#: migration ledger check (1, a simple query), the signing keys and recent revocations
#: (prepare + execute each), LISTEN. The ones on the critical path are connect, ledger,
#: then keys and revocations side by side: 5.
MAX_ROUND_TRIPS = 13
MAX_CONNECTIONS = 3


def through(relay: PausableRelay, dsn: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}").geturl()


def test_serve_starts_in_a_few_round_trips(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """`keyfob serve` (one worker) on a migrated PostgreSQL database with a signing key
    answers its first request after at most 13 round trips to the database over at most
    3 connections, and says which key signs."""
    dsn = fresh_database(postgres_server)
    parts = urllib.parse.urlsplit(dsn)
    port = free_port()
    log = tmp_path / "serve.log"
    with PausableRelay(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KEYFOB_")},
            "KEYFOB_STORE_URL": through(relay, dsn),
            "KEYFOB_SECRET": SECRET,
            "KEYFOB_PASSWORD_PROFILE": "cheapest",
        }
        command = [sys.executable, "-m", "keyfob.cli", "serve", "--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            answered = first_answer(process, f"http://127.0.0.1:{port}", log)
            connections, round_trips = relay.connections, relay.flights
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert answered.status_code == 200
    assert connections <= MAX_CONNECTIONS, log.read_text()
    assert round_trips <= MAX_ROUND_TRIPS, log.read_text()
    assert "signing key: " in log.read_text()


def first_answer(
    process: subprocess.Popen[bytes], url: str, log: Path, within: float = 30.0
) -> httpx.Response:
    """The first answer of the server at ``url`` to ``GET /.well-known/jwks.json``."""
    deadline = time.monotonic() + within
    with httpx.Client(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"keyfob serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                return client.get("/.well-known/jwks.json")
            except httpx.TransportError:
                time.sleep(0.02)
    pytest.fail(f"keyfob serve did not answer within {within} s:\n{log.read_text()}")


def test_serve_on_an_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    """`keyfob serve` (one worker, started in its own event loop) on a PostgreSQL nobody
    listens for exits with code 2 and one `Error:` line, not a traceback."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYFOB_")},
        "KEYFOB_STORE_URL": f"postgresql://keyfob@127.0.0.1:{free_port()}/keyfob?connect_timeout=1",
        "KEYFOB_SECRET": SECRET,
    }
    command = [sys.executable, "-m", "keyfob.cli", "serve", "--port", str(free_port())]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert "PostgreSQL is unavailable" in errors[0]
    assert "Traceback" not in done.stderr + done.stdout
