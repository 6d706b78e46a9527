"""Many instances, one truth: three ``uvicorn`` processes on one PostgreSQL database.

Everything is observed through HTTP, as a load balancer's clients would: refreshes of
one token racing through all three instances, reuse detected on one and enforced by
all, revocations (announced, silent, or committed late) reaching every instance's
protected routes, and a signing-key rotation served by every instance.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
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
    kid_of,
    login,
    me,
    me_statuses,
    query,
    refresh,
    register,
    running_cluster,
    session_row,
    settings_for,
    sid_of,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.shared_database]

#: Revocations announced through NOTIFY must reach every instance within this.
PROPAGATION_DEADLINE = 1.0
#: The intervals the instances run with here (the defaults are 5 s and 60 s).
RESYNC_INTERVAL = 1.0
KEY_RELOAD_INTERVAL = 3.0
#: Racing requests per instance.
RACERS_PER_INSTANCE = 10


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> str:
    return fresh_database(postgres_server)


@pytest.fixture(scope="module")
def cluster(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {
        "KEYFOB_REVOCATION_RESYNC_INTERVAL": str(RESYNC_INTERVAL),
        "KEYFOB_KEY_RELOAD_INTERVAL": str(KEY_RELOAD_INTERVAL),
    }
    with running_cluster(tmp_path_factory.mktemp("instances"), database, 3, env) as c:
        yield c


async def race(urls: list[str], token: str) -> list[httpx.Response]:
    """The same refresh token, sent at once over a fresh connection per request,
    ``RACERS_PER_INSTANCE`` times to each instance."""
    async with clients(urls * RACERS_PER_INSTANCE) as racers:
        return list(await asyncio.gather(*(refresh(r, token) for r in racers)))


async def test_racing_refreshes_through_three_instances_rotate_once(cluster: Cluster) -> None:
    """30 refreshes of one token spread over three instances: one rotation in the
    database, and every caller, on every instance, gets the identical successor."""
    async with clients(cluster.urls) as (a, b, _):
        await register(a, "racer")
        session = await login(b, "racer")
    sid = sid_of(session["access_token"])

    answers = await race(cluster.urls, session["refresh_token"])

    assert [r.status_code for r in answers] == [200] * len(answers), [r.text for r in answers]
    assert len({r.json()["refresh_token"] for r in answers}) == 1
    row = await session_row(cluster.dsn, sid)
    assert row["counter"] == 1 and row["revoked_at"] is None
    # The successor is a normal token: it rotates once more, on any instance.
    async with clients(cluster.urls[2:]) as (c,):
        r = await refresh(c, answers[0].json()["refresh_token"])
    assert r.status_code == 200
    assert (await session_row(cluster.dsn, sid))["counter"] == 2


async def test_without_grace_exactly_one_racer_wins(database: str, tmp_path: Path) -> None:
    """With KEYFOB_GRACE=0 the same race has exactly one winner; every other caller is
    refused, and the session is revoked as reused (grace off means any replay is
    theft)."""
    with running_cluster(tmp_path, database, 3, {"KEYFOB_GRACE": "0"}) as strict:
        async with clients(strict.urls) as (a, b, _):
            await register(a, "strict")
            session = await login(b, "strict")
        answers = await race(strict.urls, session["refresh_token"])

    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [400] * (len(answers) - 1), [r.text for r in answers]
    assert {r.json()["error"] for r in answers if r.status_code == 400} == {"invalid_grant"}
    row = await session_row(database, sid_of(session["access_token"]))
    assert row["counter"] == 1
    assert row["revoked_reason"] == "reuse_detected"


async def test_reuse_detected_on_one_instance_revokes_the_session_on_all(
    cluster: Cluster,
) -> None:
    """t0 → t1 on A, t1 → t2 on B; t0 replayed on C is reuse: the session is revoked,
    t2 is refused on A, and its access token on every instance within a second."""
    async with clients(cluster.urls) as (a, b, c):
        await register(c, "victim")
        t0 = (await login(a, "victim"))["refresh_token"]
        t1 = (await refresh(a, t0)).json()["refresh_token"]
        r = await refresh(b, t1)
        assert r.status_code == 200
        t2, access = r.json()["refresh_token"], r.json()["access_token"]
        assert await me_statuses((a, b, c), access) == [200] * 3

        replay = await refresh(c, t0)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert "already used" in replay.json()["error_description"]

        assert (await refresh(a, t2)).status_code == 400

        async def refused_everywhere() -> bool:
            answers = await asyncio.gather(*(me(x, access) for x in (a, b, c)))
            return all(r.status_code == 401 for r in answers)

        await wait_for(refused_everywhere, within=PROPAGATION_DEADLINE)

    row = await session_row(cluster.dsn, sid_of(access))
    assert row["revoked_reason"] == "reuse_detected"
    events = await query(
        cluster.dsn, "SELECT detail FROM events WHERE kind = 'reuse_detected' AND sid = $1",
        sid_of(access),
    )  # fmt: skip
    assert [e["detail"].split()[0] for e in events] == ["rule=older_token"]


async def test_a_revocation_reaches_every_instance_within_a_second(cluster: Cluster) -> None:
    """Log out through each instance in turn: the other two refuse the session's access
    token within a second (LISTEN/NOTIFY → revocation marker → resync)."""
    latencies: list[float] = []
    async with clients(cluster.urls) as instances:
        await register(instances[0], "leaver")
        for i, revoker in enumerate(instances):
            others = [x for j, x in enumerate(instances) if j != i]
            access = (await login(revoker, "leaver"))["access_token"]
            assert await me_statuses(others, access) == [200] * 2
            r = await revoker.post("/auth/logout", headers={"Authorization": f"Bearer {access}"})
            assert r.status_code == 204
            revoked_at = time.monotonic()

            latencies += await asyncio.gather(
                *(_latency_until_refused(x, access, revoked_at) for x in others)
            )
    assert max(latencies) < PROPAGATION_DEADLINE
    print(f"\nrevocation propagation over NOTIFY: {[round(t * 1000, 1) for t in latencies]} ms")


async def _latency_until_refused(client: httpx.AsyncClient, access: str, since: float) -> float:
    await wait_for(lambda: _refused(client, access), within=PROPAGATION_DEADLINE, every=0.002)
    return time.monotonic() - since


async def _refused(client: httpx.AsyncClient, access: str) -> bool:
    r = await me(client, access)
    assert r.status_code in (200, 401), r.text
    if r.status_code == 401:
        assert "revoked" in r.json()["error_description"]
    return r.status_code == 401


async def test_a_revocation_that_waited_for_a_lock_reaches_every_instance(
    cluster: Cluster,
) -> None:
    """A logout whose UPDATE waits 1.6 s for a row lock commits long after the revocation
    time it records, and the other instances resync in between (another logout makes
    them): once it commits they must still learn of it. (With a one-second resync
    overlap they never did.)"""
    async with clients(cluster.urls) as (a, b, c):
        await register(a, "delayed")
        access = (await login(a, "delayed"))["access_token"]
        other = (await login(b, "delayed"))["access_token"]
        assert await me_statuses((a, b, c), access) == [200] * 3
        conn = await asyncpg.connect(cluster.dsn)
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT 1 FROM sessions WHERE sid = $1 FOR UPDATE", sid_of(access)
                )
                logout = asyncio.create_task(
                    a.post("/auth/logout", headers={"Authorization": f"Bearer {access}"})
                )
                await asyncio.sleep(1.2)
                # Another revocation: b and c resync on their next protected request.
                r = await b.post("/auth/logout", headers={"Authorization": f"Bearer {other}"})
                assert r.status_code == 204

                async def other_refused() -> bool:
                    return await me_statuses((b, c), other) == [401] * 2

                await wait_for(other_refused, within=PROPAGATION_DEADLINE)
                assert await me_statuses((b, c), access) == [200] * 2
                await asyncio.sleep(0.4)  # 1.6 s in all: below lock_timeout (2 s)
            assert (await logout).status_code == 204
        finally:
            await conn.close()

        async def refused_everywhere() -> bool:
            return await me_statuses((a, b, c), access) == [401] * 3

        await wait_for(refused_everywhere, within=PROPAGATION_DEADLINE)


async def test_a_silent_revocation_is_caught_by_the_periodic_resync(cluster: Cluster) -> None:
    """A revocation written straight into the database with triggers off (so no NOTIFY,
    as if every listener had missed it) is still enforced by every instance within one
    resync interval."""
    async with clients(cluster.urls) as instances:
        await register(instances[1], "quiet")
        access = (await login(instances[1], "quiet"))["access_token"]
        sid = sid_of(access)
        assert await me_statuses(instances, access) == [200] * 3

        await revoke_without_notify(cluster.dsn, sid)
        silent_at = time.monotonic()
        still_accepted = await me_statuses(instances, access)

        async def refused_everywhere() -> bool:
            answers = await asyncio.gather(*(me(x, access) for x in instances))
            return all(r.status_code == 401 for r in answers)

        await wait_for(refused_everywhere, within=RESYNC_INTERVAL * 1.1 + 0.5, every=0.02)
        waited = time.monotonic() - silent_at
    assert 200 in still_accepted, "no notification, so no instance knew at once"
    print(f"\nsilent revocation enforced everywhere after {waited * 1000:.0f} ms")


async def revoke_without_notify(dsn: str, sid: str) -> None:
    """Revoke in the database with triggers off: no NOTIFY, nobody is told."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            # Superuser only: in replica mode ordinary triggers do not fire.
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE sessions SET revoked_at = extract(epoch from clock_timestamp()), "
                "revoked_reason = 'admin' WHERE sid = $1",
                sid,
            )
    finally:
        await conn.close()


async def _jwks_kids(client: httpx.AsyncClient) -> set[str]:
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    return {k["kid"] for k in r.json()["keys"]}


async def test_a_token_signed_by_a_key_not_yet_loaded_verifies_everywhere(
    cluster: Cluster,
) -> None:
    """Another instance rotates in a key that signs at once and issues a token with it:
    every instance accepts the token at once, loading the key on the unknown kid."""
    settings = settings_for(cluster.dsn, key_publish_delay=0)
    async with SessionManager(settings, open_store(cluster.dsn, settings=settings)) as other:
        user = await other.register("keyholder", PASSWORD)
        record = await other.rotate_signing_key()
        access = (await other.issue(user.id)).access_token
    assert kid_of(access) == record.kid

    async with clients(cluster.urls) as instances:
        unaware = [x for x in instances if record.kid not in await _jwks_kids(x)]
        answers = await asyncio.gather(*(me(x, access) for x in instances))
        assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
        assert unaware, "some instance must not have loaded the key by itself yet"
        for x in instances:
            assert record.kid in await _jwks_kids(x)


async def test_keys_rotate_from_the_cli_is_published_by_every_instance(
    cluster: Cluster,
) -> None:
    """`keyfob keys rotate` against the shared database: every instance's JWKS lists the
    new key within the reload interval."""
    env = {
        **os.environ,
        "KEYFOB_STORE_URL": cluster.dsn,
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_ISSUER": ISSUER,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "keyfob.cli", "keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rotated_at = time.monotonic()
    rows = await query(cluster.dsn, "SELECT kid FROM signing_keys ORDER BY seq DESC LIMIT 1")
    kid = rows[0]["kid"]
    assert kid in done.stdout

    async with clients(cluster.urls) as instances:

        async def published_everywhere() -> bool:
            kids = await asyncio.gather(*(_jwks_kids(x) for x in instances))
            return all(kid in k for k in kids)

        await wait_for(published_everywhere, within=KEY_RELOAD_INTERVAL * 1.1 + 1.0, every=0.05)
    print(f"\nnew key in every JWKS after {(time.monotonic() - rotated_at) * 1000:.0f} ms")
