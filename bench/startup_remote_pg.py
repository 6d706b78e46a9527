"""How long ``keyfob serve`` takes to serve its first request when PostgreSQL is far away.

A throwaway PostgreSQL server (tests/services.py) gets a database that is already
migrated and has its signing key (the state after a crash or a deploy). Between keyfob
and PostgreSQL sits the test suite's TCP relay (tests/relay.py) holding every chunk
``--rtt / 2`` in each direction, so each round trip costs ``--rtt``. Then, ``--runs``
times: ``keyfob serve`` is started as a new process, and the time from just before the
process is created to the first ``200`` from ``GET /.well-known/jwks.json`` (polled every
5 ms; uvicorn listens only once the app has started) is measured, together with the
connections opened and the round trips waited for (the relay's counts) until then.

The same runs with no delay give the part that does not depend on the database's
distance (Python start-up, imports).

Run::

    .venv/bin/python bench/startup_remote_pg.py [--rtt 0.1] [--runs 5] [--json]

docs/scaling.md quotes these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
try:
    import keyfob  # noqa: F401  (only to know whether it is installed)
except ImportError:  # a plain checkout: measure the source tree
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.relay import PausableRelay  # noqa: E402
from tests.services import PostgresServer, free_port  # noqa: E402

from keyfob import Secret, SessionManager, Settings, open_store  # noqa: E402

SECRET = "bench-startup-secret-bench-startup-secret-0123456789"


@dataclass
class Run:
    rtt: float
    seconds: float
    connections: int
    round_trips: int


async def prepared_database(server: PostgresServer) -> str:
    """A new database, migrated and holding a signing key; its DSN (direct, no relay)."""
    name = f"keyfob_startup_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = server.dsn(name)
    settings = Settings(store_url=dsn, secret=Secret(SECRET), password_profile="cheapest")
    async with SessionManager(settings, open_store(dsn, settings=settings)):
        pass
    return dsn


def through(relay: PausableRelay, dsn: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    netloc = f"{parts.username}@127.0.0.1:{relay.port}"
    return parts._replace(netloc=netloc).geturl()


def one_start(relay: PausableRelay, dsn: str, log: Path, timeout: float = 60.0) -> Run:
    port = free_port()
    env = {
        **os.environ,
        "KEYFOB_STORE_URL": through(relay, dsn),
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_PASSWORD_PROFILE": "cheapest",
    }
    command = [sys.executable, "-m", "keyfob.cli", "serve", "--port", str(port)]
    command += ["--log-level", "warning"]
    url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    relay.reset_counts()
    with log.open("ab") as out:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            with httpx.Client(timeout=1.0) as client:
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"keyfob serve exited:\n{log.read_text()}")
                    if time.monotonic() - started > timeout:
                        raise RuntimeError(f"keyfob serve not up in {timeout} s")
                    try:
                        if client.get(url).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.005)
            seconds = time.monotonic() - started
            measured = Run(2 * relay.delay, seconds, relay.connections, relay.flights)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt", type=float, default=0.1, help="round trip, seconds")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    args = parser.parse_args()

    results: list[Run] = []
    with PostgresServer() as server, tempfile.TemporaryDirectory() as tmp:
        dsn = asyncio.run(prepared_database(server))
        parts = urllib.parse.urlsplit(dsn)
        for rtt in (0.0, args.rtt):
            target = (parts.hostname or "127.0.0.1", parts.port or 5432)
            with PausableRelay(*target, delay=rtt / 2) as relay:
                for _ in range(args.runs):
                    results.append(one_start(relay, dsn, Path(tmp) / "serve.log"))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return
    for rtt in (0.0, args.rtt):
        runs = [r for r in results if r.rtt == rtt]
        times = [r.seconds for r in runs]
        print(
            f"RTT {1000 * rtt:5.0f} ms: first request after median "
            f"{statistics.median(times):.2f} s "
            f"(min {min(times):.2f}, max {max(times):.2f}; {len(runs)} runs); "
            f"{runs[0].connections} connections, {runs[0].round_trips} round trips"
        )


if __name__ == "__main__":
    main()
