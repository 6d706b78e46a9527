"""Real headless Chromium and real ``keyfob serve`` processes for the browser tests.

Needs Debian's ``chromium`` package (``/usr/bin/chromium``) and Playwright for Python;
Playwright's own browser download is not used. Without them the tests are skipped, except
in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port, unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Short enough that the silent refresh (at three quarters of the life) comes in 3 s.
ACCESS_TTL_SECONDS = 4


@dataclass
class Server:
    url: str
    store_url: str
    env: dict[str, str]
    log: Path

    def cli(self, *args: str) -> str:
        """Run another ``keyfob`` command against the same store; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "keyfob.cli", *args, "--store-url", self.store_url],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout


@contextmanager
def _serve(directory: Path, **settings: str) -> Iterator[Server]:
    """``keyfob serve`` on a free port with a temporary SQLite store and these settings."""
    port = free_port()
    store_url = f"sqlite:///{directory / 'keyfob.db'}"
    env = {
        **os.environ,
        "KEYFOB_STORE_URL": store_url,
        "KEYFOB_ACCESS_TTL": f"{ACCESS_TTL_SECONDS}s",
        "KEYFOB_PASSWORD_PROFILE": "cheapest",
        **settings,
    }
    env.pop("KEYFOB_ISSUER", None)  # serve derives http://localhost:PORT
    log = directory / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "keyfob.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://localhost:{port}"
    try:
        _wait_until_up(url, process, log)
        yield Server(url=url, store_url=store_url, env=env, log=log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # Tokens are never logged, not even in the access log.
    assert "kfrt_" not in log.read_text(errors="replace")


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"keyfob serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/.well-known/jwks.json", timeout=1) as res:  # noqa: S310 - a localhost URL built above
                if res.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"keyfob serve did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture
def keyfob_server(tmp_path: Path) -> Iterator[Server]:
    """``keyfob serve`` with 4-second access tokens and the default grace window."""
    with _serve(tmp_path) as server:
        yield server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``keyfob serve`` with extra ``KEYFOB_*`` settings (stopped after the test)."""
    with ExitStack() as stack:
        yield lambda **settings: stack.enter_context(_serve(tmp_path, **settings))


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable("Chromium is not installed: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed: pip install playwright")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()
