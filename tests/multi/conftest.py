"""Several real keyfob server processes on one PostgreSQL database, driven over HTTP.

A :class:`Cluster` is N ``uvicorn`` processes (one worker each) on 127.0.0.1, sharing
``KEYFOB_SECRET``, ``KEYFOB_ISSUER`` (one issuer behind a load balancer, as in
production) and ``KEYFOB_STORE_URL=postgresql://…``. The database is migrated and
given its first signing key once before they start, as ``keyfob serve`` does.

Everything is bounded: processes are stopped (by their pid) on teardown, every HTTP call
has a timeout, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from keyfob import Secret, SessionManager, Settings, open_store
from tests.server.uvicorn_process import SECRET, UvicornProcess
from tests.services import PostgresServer

PASSWORD = "correct horse battery staple"
#: The one issuer every instance signs for (they sit behind one public URL).
ISSUER = "http://auth.keyfob.test"
#: Generous per-request timeout: a request that hangs fails the test instead.
HTTP_TIMEOUT = 15.0


def settings_for(dsn: str, **changes: Any) -> Settings:
    """Settings of a manager in the test process on the cluster's database."""
    return Settings(
        store_url=dsn,
        secret=Secret(SECRET),
        issuer=ISSUER,
        password_profile="cheapest",
    ).replace(**changes)


async def _fresh_database(server: PostgresServer) -> str:
    name = f"keyfob_multi_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.dsn(name)


async def _prepare(dsn: str) -> None:
    # Migrations and the first signing key, once, before any instance starts.
    settings = settings_for(dsn)
    async with SessionManager(settings, open_store(dsn, settings=settings)):
        pass


async def new_database(server: PostgresServer) -> str:
    """A new, migrated database with a signing key on ``server``; its DSN."""
    dsn = await _fresh_database(server)
    await _prepare(dsn)
    return dsn


def fresh_database(server: PostgresServer) -> str:
    """:func:`new_database` for synchronous (module-scoped) fixtures."""
    return asyncio.run(new_database(server))


class Cluster:
    """``count`` keyfob processes on the database ``dsn``; ``env`` adds ``KEYFOB_*``.

    Instance *n* names its PostgreSQL connections ``keyfob-<n>`` (``application_name``),
    so a test can tell from ``pg_stat_activity`` which instance holds what.
    """

    def __init__(
        self, directory: Path, dsn: str, count: int, env: Mapping[str, str] | None = None
    ) -> None:
        self.dsn = dsn
        self.env = {"KEYFOB_STORE_URL": dsn, "KEYFOB_ISSUER": ISSUER, **(env or {})}
        store_url = self.env["KEYFOB_STORE_URL"]
        joiner = "&" if "?" in store_url else "?"
        self.servers = [
            UvicornProcess(
                directory,
                env={
                    **self.env,
                    "KEYFOB_STORE_URL": f"{store_url}{joiner}application_name=keyfob-{n}",
                },
            )
            for n in range(count)
        ]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self) -> None:
        for server in self.servers:
            server.start()
        try:
            for server in self.servers:
                server.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def output(self) -> str:
        return "\n".join(f"--- {s.url}\n{s.output()}" for s in self.servers)


@contextmanager
def running_cluster(
    directory: Path, dsn: str, count: int, env: Mapping[str, str] | None = None
) -> Iterator[Cluster]:
    cluster = Cluster(directory, dsn, count, env)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@asynccontextmanager
async def clients(urls: Sequence[str]) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client (its own connection pool) per URL."""
    made = [httpx.AsyncClient(base_url=u, timeout=HTTP_TIMEOUT) for u in urls]
    try:
        yield made
    finally:
        await asyncio.gather(*(c.aclose() for c in made))


async def register(client: httpx.AsyncClient, username: str) -> str:
    r = await client.post("/auth/register", json={"username": username, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def login(client: httpx.AsyncClient, username: str) -> dict[str, Any]:
    """Log in with the refresh token in the body; the JSON answer."""
    r = await client.post(
        "/auth/login", json={"username": username, "password": PASSWORD, "transport": "body"}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/auth/me", headers={"Authorization": f"Bearer {access_token}"})


async def me_statuses(instances: Sequence[httpx.AsyncClient], access_token: str) -> list[int]:
    """The status of ``GET /auth/me`` with this access token on each instance."""
    answers = await asyncio.gather(*(me(x, access_token) for x in instances))
    return [r.status_code for r in answers]


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float, *, every: float = 0.01
) -> float:
    """Wait until the async ``check`` holds; fail after ``within`` seconds. The wait."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(every)
    return time.monotonic() - start


async def query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def session_row(dsn: str, sid: str) -> asyncpg.Record:
    rows = await query(
        dsn, "SELECT counter, revoked_at, revoked_reason FROM sessions WHERE sid = $1", sid
    )
    assert rows, f"no session {sid}"
    return rows[0]


def _segment(access_token: str, index: int) -> dict[str, Any]:
    part = access_token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def sid_of(access_token: str) -> str:
    """The ``sid`` claim of an access token (read, not verified: keyfob minted it)."""
    return str(_segment(access_token, 1)["sid"])


def kid_of(access_token: str) -> str:
    """The ``kid`` in an access token's header."""
    return str(_segment(access_token, 0)["kid"])
