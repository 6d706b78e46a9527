"""Bounded storage: expired sessions are purged by one instance at a time, and on demand.

Three instances with a 4-second absolute session lifetime and a 1-second purge interval:
the sessions table fills with logins and empties again as they expire, refreshes of
live sessions are served meanwhile, exactly one instance holds the database-wide purge
lock, and when that instance dies another takes over.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from keyfob import SessionManager, open_store
from tests.server.uvicorn_process import SECRET
from tests.services import PostgresServer

from .conftest import (
    ISSUER,
    PASSWORD,
    Cluster,
    clients,
    fresh_database,
    login,
    new_database,
    query,
    refresh,
    register,
    running_cluster,
    settings_for,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.shared_database]

ABSOLUTE_TTL = 4.0
PURGE_INTERVAL = 1.0
#: The purge lock's key (keyfob.store.postgres.statements.PURGE_LOCK): "keyfob", then 2.
PURGE_LOCK_KEY = (0x6B6579666F62 << 16) | 2


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    env = {
        "KEYFOB_ABSOLUTE_TTL": f"{ABSOLUTE_TTL}s",
        "KEYFOB_PURGE_INTERVAL": f"{PURGE_INTERVAL}s",
    }
    dsn = fresh_database(postgres_server)
    with running_cluster(tmp_path_factory.mktemp("purge"), dsn, 3, env) as c:
        yield c


async def count_sessions(dsn: str) -> int:
    return int((await query(dsn, "SELECT count(*) AS n FROM sessions"))[0]["n"])


async def purge_lock_holders(dsn: str) -> list[str]:
    """The application_name of every connection holding the purge lock."""
    rows = await query(
        dsn,
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
        PURGE_LOCK_KEY,
    )
    return [r["application_name"] for r in rows]


async def test_expired_sessions_are_purged_by_one_instance_at_a_time(cluster: Cluster) -> None:
    """27 sessions from logins on three instances fill the table; once they expire it is
    empty again within one purge interval, refreshes of a live session are served all
    along, one instance holds the purge lock, and another takes over when it dies."""
    async with clients(cluster.urls) as instances:
        for n, x in enumerate(instances):
            await register(x, f"purged{n}")
        for x in instances:
            for n in range(3):
                for _ in range(3):
                    await login(x, f"purged{n}")
        created_at = time.monotonic()
        assert await count_sessions(cluster.dsn) == 27

        async def one_holder() -> bool:
            return len(await purge_lock_holders(cluster.dsn)) == 1

        await wait_for(one_holder, within=PURGE_INTERVAL * 1.1 + 1.0, every=0.05)

        # A session made later keeps refreshing while the first 27 expire and go.
        await asyncio.sleep(max(0.0, created_at + ABSOLUTE_TTL - 1.0 - time.monotonic()))
        live = await login(instances[0], "purged0")
        token = live["refresh_token"]
        statuses = []
        while await count_sessions(cluster.dsn) > 1:
            assert time.monotonic() - created_at < ABSOLUTE_TTL + PURGE_INTERVAL * 1.1 + 1.5
            r = await refresh(instances[len(statuses) % 3], token)
            statuses.append(r.status_code)
            token = r.json()["refresh_token"]
            await asyncio.sleep(0.05)
        emptied_after = time.monotonic() - created_at
        assert set(statuses) == {200}

        # The purger dies; another instance takes the lock at its next turn and purges.
        holder = (await purge_lock_holders(cluster.dsn))[0]
        dead = int(holder.rpartition("-")[2])
        cluster.servers[dead].kill()
        killed_at = time.monotonic()

        async def taken_over() -> bool:
            holders = await purge_lock_holders(cluster.dsn)
            return len(holders) == 1 and holders[0] != holder

        await wait_for(taken_over, within=PURGE_INTERVAL * 1.1 + 1.0, every=0.05)
        takeover = time.monotonic() - killed_at

        async def empty() -> bool:
            return await count_sessions(cluster.dsn) == 0

        await wait_for(empty, within=ABSOLUTE_TTL + PURGE_INTERVAL * 1.1 + 1.0, every=0.1)
    print(
        f"\npurge: 27 expired sessions gone {emptied_after:.1f} s after login "
        f"(TTL {ABSOLUTE_TTL:.0f} s, interval {PURGE_INTERVAL:.0f} s); purge lock taken "
        f"over {1000 * takeover:.0f} ms after its holder was killed"
    )


async def test_keyfob_purge_deletes_expired_and_long_revoked_sessions(
    postgres_server: PostgresServer,
) -> None:
    """`keyfob purge` on demand: expired sessions and sessions revoked longer ago than
    KEYFOB_REVOKED_RETENTION go; live ones stay."""
    dsn = await new_database(postgres_server)
    short = settings_for(dsn, absolute_ttl=1.0)
    async with SessionManager(short, open_store(dsn, settings=short)) as manager:
        user = await manager.register("batch", PASSWORD)
        for _ in range(5):
            await manager.issue(user.id)
    settings = settings_for(dsn)
    async with SessionManager(settings, open_store(dsn, settings=settings)) as manager:
        live = [await manager.issue(user.id) for _ in range(2)]
        revoked = await manager.issue(user.id)
        await manager.revoke_session(revoked.session.sid)
    await asyncio.sleep(1.1)
    assert await count_sessions(dsn) == 8

    env = {
        **os.environ,
        "KEYFOB_STORE_URL": dsn,
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_ISSUER": ISSUER,
        "KEYFOB_REVOKED_RETENTION": "0",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "keyfob.cli", "purge"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "purged 6 session(s) and authorization code(s)"
    left = await query(dsn, "SELECT sid FROM sessions ORDER BY sid")
    assert sorted(r["sid"] for r in left) == sorted(p.session.sid for p in live)
