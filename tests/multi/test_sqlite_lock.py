"""SQLite: the database file write-locked by another process for longer than the busy
timeout, through HTTP on a real server process (spec §4).

The refresh waits the busy timeout for the lock, then answers 503 JSON with
Retry-After; the rotation did not happen (SQLite refused it), so the retry after the lock
is gone gets the successor, even later than the grace window counted from the refused
request, and the session is never revoked.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.uvicorn_process import UvicornProcess

from .conftest import PASSWORD, sid_of
from .test_partition import assert_outage_answer

pytestmark = [pytest.mark.slow, pytest.mark.shared_database]

#: The SQLite store's busy timeout in a server (SQLiteStore's default), and the bound the
#: store documents for one write (SQLiteStore.max_write_delay: twice that, plus 1 s).
BUSY_TIMEOUT = 5.0
REFUSED_WITHIN = 2 * BUSY_TIMEOUT + 1.0
GRACE = 2.0

#: Another process: takes the database's write lock, says so, holds it until its stdin
#: closes.
_LOCKER = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
    "conn.execute('ROLLBACK')\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UvicornProcess]:
    with UvicornProcess(tmp_path, env={"KEYFOB_GRACE": str(GRACE)}) as server:
        yield server


@contextlib.contextmanager
def write_locked(database: Path) -> Iterator[None]:
    """Another process holds ``database``'s write lock while the block runs."""
    with subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdin is not None and locker.stdout is not None
        try:
            assert locker.stdout.readline().strip() == "locked"
            yield
        finally:
            locker.stdin.close()
            locker.wait(timeout=10)


def test_a_refresh_refused_by_a_locked_database_file_is_retried_to_the_successor(
    server: UvicornProcess, tmp_path: Path
) -> None:
    """Another process holds the write lock for longer than the busy timeout and the
    grace window: the refresh answers 503 JSON with Retry-After within the documented
    bound (never a 500, never a hang); once the lock is gone the same token retried gets
    200 and the identical successor twice, which then rotates. Nothing revoked, no
    reuse event."""
    database = tmp_path / "keyfob.db"
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        r = client.post("/auth/register", json={"username": "locked", "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = client.post(
            "/auth/login",
            json={"username": "locked", "password": PASSWORD, "transport": "body"},
        )
        assert r.status_code == 200, r.text
        r = client.post("/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
        assert r.status_code == 200, r.text
        token, sid = r.json()["refresh_token"], sid_of(r.json()["access_token"])

        with write_locked(database):
            sent = time.monotonic()
            refused = client.post("/auth/refresh", json={"refresh_token": token})
            took = time.monotonic() - sent
            assert_outage_answer(refused)
            assert BUSY_TIMEOUT * 0.9 <= took < REFUSED_WITHIN, took
            time.sleep(max(0.0, sent + GRACE + 1.0 - time.monotonic()))

        time.sleep(int(refused.headers["retry-after"]))
        retries = [client.post("/auth/refresh", json={"refresh_token": token}) for _ in "ab"]
        assert [x.status_code for x in retries] == [200, 200], [x.text for x in retries]
        assert len({x.json()["refresh_token"] for x in retries}) == 1
        onward = client.post(
            "/auth/refresh", json={"refresh_token": retries[0].json()["refresh_token"]}
        )
        assert onward.status_code == 200, onward.text

    conn = sqlite3.connect(database)
    try:
        row = conn.execute(
            "SELECT counter, revoked_at FROM sessions WHERE sid = ?", (sid,)
        ).fetchone()
        reused = conn.execute("SELECT detail FROM events WHERE kind = 'reuse_detected'").fetchall()
    finally:
        conn.close()
    print(f"\nSQLite write-locked by another process: 503 after {1000 * took:.0f} ms")
    assert row == (3, None)
    assert reused == []
