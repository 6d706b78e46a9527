"""Soak test: a real ``keyfob serve`` under mixed traffic from many clients, for minutes.

    scripts/soak --duration 600                 # before a release (SQLite)
    scripts/soak --duration 600 --store postgres
    scripts/soak --duration 60                  # what CI runs (tests/test_soak.py)

It starts ``keyfob serve`` on 127.0.0.1 (one worker; the store in a temporary
directory, or a throwaway PostgreSQL from ``tests/services.py``), gives every simulated
client an account and a session, and drives bounded mixed traffic with httpx: refreshes
by body and by cookie (with the CSRF header and ``Origin``), ``/auth/me``, session lists,
three-way concurrent refreshes of one token within grace (all must get the identical
successor), replays of a token rotated twice before (``invalid_grant``, and the
session must then be revoked: its current token and access token are refused too),
logouts, ``DELETE /auth/sessions/{sid}``, logout-all, logins by cookie and body,
registrations and wrong passwords.

**Every answer is accounted for**: each request has the set of statuses it may get
(:data:`EXPECTED`); another status, a 5xx, a timeout or a connection error is a failure,
and so is any ``ERROR`` or traceback in the server's log. Logins and registrations may
also answer 429 (the per-address limits fire at these rates: every client is 127.0.0.1)
and 503 with ``Retry-After`` (a full password-hashing pool); the client then waits and
logs in again.

**Flat, defined**: once a second the server's RSS and open file descriptors are read
from ``/proc/<pid>``; requests are grouped in windows of ``--window`` seconds, and the
p99 latency of each window is taken over the requests that do no password hashing.
After the warm-up (``max(10 s, 10% of the run)``) the samples are split in thirds, and
each measure must not grow from the first third to the last: the last third's median
must stay within the larger of the first third's median plus a tolerance and the first
third's largest value (robust to single spikes either way). The tolerances: RSS 10% +
16 MiB, descriptors other than sockets 8, the windows' p99 100% + 50 ms (the machine is
shared, and until password hashing leaves the event loop a login stalls the requests
beside it, so latency is the noisiest measure). Sockets are judged once the clients
have gone: not one client connection may still be open, and the other descriptors must
be back within 4 of their level before the traffic (the store's connection pool may
grow within its bounds). A leak of one kilobyte per request fails a ten-minute run at the
default rate; the 60 s CI run catches gross leaks (tens of KiB per request), any
connection or descriptor left open, and broken accounting.

The load is bounded: ``--rate`` requests per second in all (default 80) from
``--clients`` connections (default 16), so the run leaves most of a two-core machine to
others. Exit status 0 when every answer was expected and every measure stayed flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "soak-test-deployment-secret-0123456789-abcdefghij"
PASSWORD = "soak-password-correct-horse"
WRONG_PASSWORD = "not-the-password-at-all"

#: The statuses each kind of request may get. Anything else is a failure.
EXPECTED: dict[str, frozenset[int]] = {
    "refresh": frozenset({200}),
    "refresh_concurrent": frozenset({200}),
    "me": frozenset({200}),
    "sessions": frozenset({200}),
    "login": frozenset({200, 429, 503}),
    "register": frozenset({201, 429, 503}),
    "wrong_password": frozenset({400, 429, 503}),
    "replay": frozenset({400}),
    "refresh_after_revocation": frozenset({400}),
    "me_after_revocation": frozenset({401}),
    "logout": frozenset({204}),
    "revoke_session": frozenset({204}),
    "logout_all": frozenset({200}),
}
#: Requests that hash a password: left out of the latency windows (they are paced, and
#: their cost is argon2's by design).
HASHING = frozenset({"login", "register", "wrong_password"})


# --- measuring -------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    at: float
    op: str
    status: int  # 0: no answer (timeout, connection error)
    seconds: float


@dataclass
class Ledger:
    """Every request and its answer; the failures with what was wrong."""

    started: float = field(default_factory=time.monotonic)
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def record(self, op: str, status: int, seconds: float, detail: str = "") -> bool:
        self.answers.append(Answer(time.monotonic() - self.started, op, status, seconds))
        if status in EXPECTED[op]:
            return True
        self.fail(f"{op}: status {status or 'none'} {detail}".strip())
        return False

    def fail(self, what: str) -> None:
        self.failures.append(what)

    def table(self) -> dict[str, dict[str, int]]:
        counts: dict[str, Counter[str]] = {}
        for a in self.answers:
            counts.setdefault(a.op, Counter())[str(a.status or "none")] += 1
        return {op: dict(sorted(c.items())) for op, c in sorted(counts.items())}


@dataclass(slots=True)
class Sample:
    at: float
    rss_bytes: int
    #: Open file descriptors, and how many of them are sockets (client connections
    #: among them, whose number moves with the traffic).
    fds: int
    sockets: int

    @property
    def other_fds(self) -> int:
        return self.fds - self.sockets


def client_connections(pid: int, port: int) -> int:
    """How many descriptors of ``pid`` are accepted connections on ``port`` (its
    clients' connections; the store's connection pool is left out)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rpartition(":")[2], 16)
                if local_port == port and fields[3] != "0A":  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
    return count


def read_process(pid: int, at: float = 0.0) -> Sample:
    """The server's resident set size and open file descriptors, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    fds = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        with contextlib.suppress(OSError):
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return Sample(at, rss, fds, sockets)


# --- judging "flat" --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much a measure may grow from the first third to the last: ``relative``
    times the first third's median, plus ``absolute``."""

    relative: float
    absolute: float


RSS_TOLERANCE = Tolerance(0.10, 16 * 2**20)
#: Descriptors other than sockets (files, pipes, event fds): no traffic should add any.
FD_TOLERANCE = Tolerance(0.0, 8)
#: The machine is shared: a window's p99 moves with everybody else's load, so only a
#: doubling (plus 50 ms) counts as growth.
P99_TOLERANCE = Tolerance(1.0, 0.050)
#: Descriptors other than sockets once every client has gone, against before the
#: traffic. (Client connections must all be closed by then, however short the run; the
#: store's pool may have grown within its bounds.)
FD_LEFT_OVER = 4


@dataclass(frozen=True, slots=True)
class Verdict:
    measure: str
    first: float
    last: float
    limit: float

    @property
    def flat(self) -> bool:
        return self.last <= self.limit

    def __str__(self) -> str:
        word = "flat" if self.flat else "GREW"
        return (
            f"{self.measure}: {word} (first third {self.first:.4g}, last third "
            f"{self.last:.4g}, limit {self.limit:.4g})"
        )


def judge_flat(measure: str, values: Sequence[float], tolerance: Tolerance) -> Verdict:
    """Compare the last third of ``values`` (taken after the warm-up, in time order) with
    the first (module docstring). Needs at least three values."""
    if len(values) < 3:
        raise ValueError(f"{measure}: {len(values)} samples after warm-up; run longer")
    third = len(values) // 3
    first = statistics.median(values[:third])
    last = statistics.median(values[-third:])
    # Growth means the late typical value beats both the tolerance over the early typical
    # value and the worst early value: one slow early window does not set the bar low.
    limit = max(first * (1 + tolerance.relative) + tolerance.absolute, max(values[:third]))
    return Verdict(measure, first, last, limit)


def window_p99s(answers: Sequence[Answer], *, since: float, window: float) -> list[float]:
    """The p99 latency of each full window of ``window`` seconds from ``since`` on, over
    the requests that hash no password."""
    buckets: dict[int, list[float]] = {}
    for a in answers:
        if a.at >= since and a.op not in HASHING and a.status:
            buckets.setdefault(int((a.at - since) // window), []).append(a.seconds)
    if not buckets:
        return []
    last_full = max(buckets) - 1  # the last window may be cut short by the end of the run
    return [_p99(buckets[i]) for i in sorted(buckets) if i <= last_full and len(buckets[i]) >= 20]


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


# --- pacing ----------------------------------------------------------------------------


class Pacer:
    """A token bucket: at most ``rate`` events per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    async def take(self, n: float = 1.0) -> None:
        """Reserve ``n`` events and wait for their turn (the bucket may go negative:
        later callers then wait longer, in order)."""
        self._refill()
        wait = max(0.0, (n - self._tokens) / self.rate)
        self._tokens -= n
        if wait:
            await asyncio.sleep(wait)


# --- the clients -----------------------------------------------------------------------


@dataclass
class Session:
    refresh_token: str
    access_token: str
    history: list[str] = field(default_factory=list)  # earlier refresh tokens, oldest first


class Client:
    """One simulated user on its own connection: body or cookie transport."""

    def __init__(self, run: Run, username: str, transport: str, session: Session) -> None:
        self.run = run
        self.username = username
        self.transport = transport
        self.session: Session | None = session
        self.http = httpx.AsyncClient(
            base_url=run.url,
            timeout=run.timeout,
            # Idle connections are dropped before uvicorn's 5 s keep-alive timeout, so a
            # request never races the server closing its connection.
            limits=httpx.Limits(max_connections=3, keepalive_expiry=2.0),
        )
        # 78 refreshes a minute at most, under the per-session budget (120/minute): a
        # 429 is then a fault.
        self.refresh_budget = Pacer(1.0)
        self.trio_budget = Pacer(0.1)

    # requests

    async def call(self, op: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """Send one request and account for its answer; None when it failed."""
        started = time.perf_counter()
        try:
            r = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.run.ledger.record(op, 0, time.perf_counter() - started, repr(exc))
            return None
        ok = self.run.ledger.record(op, r.status_code, time.perf_counter() - started, r.text[:200])
        if ok and r.status_code in {429, 503} and "retry-after" not in r.headers:
            self.run.ledger.fail(f"{op}: {r.status_code} without Retry-After")
        return r if ok else None

    def _refresh_request(self, token: str) -> dict[str, Any]:
        if self.transport == "body":
            return {"json": {"refresh_token": token}}
        return {"headers": {**self.run.csrf, "Cookie": f"{self.run.cookie_name}={token}"}}

    def _token_from(self, r: httpx.Response) -> str:
        if self.transport == "body":
            return str(r.json()["refresh_token"])
        set_cookie: str = r.headers.get("set-cookie", "")
        name, _, rest = set_cookie.partition("=")
        if name != self.run.cookie_name:
            self.run.ledger.fail(f"{self.transport} answer without the refresh cookie")
        return rest.partition(";")[0]

    # actions

    async def refresh(self) -> None:
        s = self.session
        assert s is not None
        r = await self.call(
            "refresh", "POST", "/auth/refresh", **self._refresh_request(s.refresh_token)
        )
        if r is None:
            self.session = None
            return
        s.history = [*s.history[-3:], s.refresh_token]
        s.refresh_token, s.access_token = self._token_from(r), r.json()["access_token"]

    async def me(self) -> None:
        assert self.session is not None
        await self.call("me", "GET", "/auth/me", headers=self.run.bearer(self.session.access_token))

    async def sessions(self) -> None:
        assert self.session is not None
        await self.call(
            "sessions", "GET", "/auth/sessions", headers=self.run.bearer(self.session.access_token)
        )

    async def concurrent_refresh(self) -> None:
        """Three refreshes of one token at once, on three connections: within grace, all
        get the identical successor (spec §3)."""
        s = self.session
        assert s is not None
        request = self._refresh_request(s.refresh_token)
        answers = await asyncio.gather(
            *(self.call("refresh_concurrent", "POST", "/auth/refresh", **request) for _ in range(3))
        )
        if any(r is None for r in answers):
            self.session = None
            return
        tokens = {self._token_from(r) for r in answers if r is not None}
        if len(tokens) != 1:
            self.run.ledger.fail(f"concurrent refreshes got {len(tokens)} different successors")
            self.session = None
            return
        s.history = [*s.history[-3:], s.refresh_token]
        s.refresh_token = tokens.pop()
        s.access_token = answers[0].json()["access_token"]  # type: ignore[union-attr]

    async def replay(self) -> None:
        """Present a token rotated away twice before: reuse. The session must be revoked
        at once: its current refresh token and access token are refused too."""
        s = self.session
        assert s is not None
        if len(s.history) < 2:
            await self.refresh()
            return
        r = await self.call(
            "replay", "POST", "/auth/refresh", **self._refresh_request(s.history[-2])
        )
        if r is not None and r.json().get("error") != "invalid_grant":
            self.run.ledger.fail(f"replay answered {r.json()}")
        await self._expect_revoked(s)

    async def _expect_revoked(self, s: Session) -> None:
        r = await self.call(
            "refresh_after_revocation",
            "POST",
            "/auth/refresh",
            **self._refresh_request(s.refresh_token),
        )
        if r is not None and r.json().get("error") != "invalid_grant":
            self.run.ledger.fail(f"refresh after revocation answered {r.json()}")
        await self.call(
            "me_after_revocation", "GET", "/auth/me", headers=self.run.bearer(s.access_token)
        )
        self.session = None

    async def logout(self) -> None:
        s = self.session
        assert s is not None
        await self.call("logout", "POST", "/auth/logout", **self._refresh_request(s.refresh_token))
        await self._expect_revoked(s)

    async def revoke_own_session(self) -> None:
        s = self.session
        assert s is not None
        r = await self.call("me", "GET", "/auth/me", headers=self.run.bearer(s.access_token))
        if r is None:
            self.session = None
            return
        sid = r.json()["sid"]
        await self.call(
            "revoke_session",
            "DELETE",
            f"/auth/sessions/{sid}",
            headers=self.run.bearer(s.access_token),
        )
        await self._expect_revoked(s)

    async def logout_all(self) -> None:
        s = self.session
        assert s is not None
        await self.call(
            "logout_all", "POST", "/auth/logout-all", headers=self.run.bearer(s.access_token)
        )
        await self._expect_revoked(s)

    async def login(self) -> None:
        """Log in by this client's transport; on 429/503 wait as told and try later."""
        await self.run.login_pacer.take()
        transport = self.transport
        headers = {"Origin": self.run.own_origin} if transport == "cookie" else {}
        r = await self.call(
            "login",
            "POST",
            "/auth/login",
            json={"username": self.username, "password": PASSWORD, "transport": transport},
            headers=headers,
        )
        if r is None:
            return
        if r.status_code != 200:
            await asyncio.sleep(min(5.0, float(r.headers.get("retry-after", "1"))))
            return
        self.session = Session(self._token_from(r), r.json()["access_token"])

    async def close(self) -> None:
        await self.http.aclose()


class Run:
    """The traffic against one server: clients, pacers and the ledger."""

    def __init__(self, url: str, *, rate: float, timeout: float) -> None:
        self.url = url
        self.own_origin = url
        self.csrf = {"X-Keyfob-CSRF": "1", "Origin": url}
        # keyfob serve on 127.0.0.1 is a secure context for browsers: the prefixed cookie.
        self.cookie_name = "__Secure-keyfob_refresh"
        self.timeout = timeout
        self.ledger = Ledger()
        self.requests = Pacer(rate, burst=max(4.0, rate / 10))
        # Logins stay under the per-address limit (30/minute): every client is 127.0.0.1.
        self.login_pacer = Pacer(0.35)
        self.churn = Pacer(0.15)  # session-ending events, each followed by a login
        # In turn, so that even a short run has each kind.
        self.churn_kinds = itertools.cycle(
            ("replay", "logout", "revoke_own_session", "logout_all", "login")
        )
        self.registrations = Pacer(1 / 8)  # under 10/minute per address
        self.wrong_passwords = Pacer(1 / 15)

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def drive(self, client: Client, until: float, rng: random.Random) -> None:
        while time.monotonic() < until:
            await self.requests.take()
            if client.session is None:
                await client.login()
                continue
            if self.churn.try_take():
                action = getattr(client, next(self.churn_kinds))
                await action()
                continue
            if self.registrations.try_take():
                await self._register(client, rng)
                continue
            if self.wrong_passwords.try_take():
                await client.call(
                    "wrong_password",
                    "POST",
                    "/auth/login",
                    json={
                        "username": "soak-wrong",
                        "password": WRONG_PASSWORD,
                        "transport": "body",
                    },
                )
                continue
            roll = rng.random()
            if roll < 0.04 and client.trio_budget.try_take():
                await self.requests.take(2)  # the two extra requests of the trio
                await client.concurrent_refresh()
            elif roll < 0.45 and client.refresh_budget.try_take():
                await client.refresh()
            elif roll < 0.95:
                await client.me()
            else:
                await client.sessions()

    async def _register(self, client: Client, rng: random.Random) -> None:
        name = f"soak-new-{rng.getrandbits(48):012x}"
        await client.call(
            "register", "POST", "/auth/register", json={"username": name, "password": PASSWORD}
        )


# --- the server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def store_url(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'keyfob.db'}"
        return
    sys.path.insert(0, str(ROOT))
    from tests.services import PostgresServer  # the test suite's throwaway PostgreSQL

    with PostgresServer() as server:
        yield server.dsn()


def server_env(url: str, port: int, profile: str) -> dict[str, str]:
    return {
        **os.environ,
        "KEYFOB_STORE_URL": url,
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_PASSWORD_PROFILE": profile,
        "KEYFOB_ISSUER": f"http://127.0.0.1:{port}",
    }


async def provision(env: dict[str, str], usernames: Sequence[str]) -> list[Session]:
    """Create the accounts and one session each through the Python API, past the HTTP
    rate limits (which would allow ten registrations a minute from one address)."""
    from keyfob import SessionManager, Settings, open_store
    from keyfob.core.models import DeviceInfo

    settings = Settings.from_env(environ=env)
    store = open_store(settings.store_url, settings=settings)
    await store.migrate()
    sessions = []
    async with SessionManager(settings, store) as manager:
        for name in [*usernames, "soak-wrong"]:
            await manager.register(name, PASSWORD)
        for name in usernames:
            pair = await manager.login(
                name, PASSWORD, device=DeviceInfo(user_agent="soak", ip="127.0.0.1")
            )
            sessions.append(Session(pair.refresh_token.value, pair.access_token))
    return sessions


@contextlib.asynccontextmanager
async def serve(env: dict[str, str], port: int, log: Path) -> AsyncIterator[int]:
    """``keyfob serve`` (one worker: the process itself serves, so its pid is the one to
    watch), stopped with SIGTERM."""
    command = [sys.executable, "-m", "keyfob.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"keyfob serve exited:\n{_read(log)}")
                with contextlib.suppress(httpx.TransportError):
                    r = await http.get(f"http://127.0.0.1:{port}/.well-known/jwks.json")
                    if r.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"keyfob serve did not start:\n{_read(log)}")
                await asyncio.sleep(0.1)
        yield process.pid
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


async def sample(pid: int, samples: list[Sample], started: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            samples.append(read_process(pid, time.monotonic() - started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def server_log_errors(text: str) -> list[str]:
    """Lines of the server's log that say something went wrong on its side."""
    bad = ("ERROR", "Traceback", "CRITICAL", "Exception in ASGI")
    return [line for line in text.splitlines() if any(word in line for word in bad)]


# --- the run ---------------------------------------------------------------------------


@dataclass
class Report:
    duration: float
    requests: int
    answers: dict[str, dict[str, int]]
    failures: list[str]
    verdicts: list[Verdict]
    p99_windows: list[float]
    samples: list[Sample]
    #: Open descriptors other than sockets before the traffic and once the clients left.
    descriptors: tuple[int, int]

    @property
    def passed(self) -> bool:
        return not self.failures and all(v.flat for v in self.verdicts)

    def text(self) -> str:
        lines = [f"soak: {self.requests} requests in {self.duration:.0f} s"]
        for op, statuses in self.answers.items():
            shown = ", ".join(f"{s}: {n}" for s, n in statuses.items())
            lines.append(f"  {op:<26} {shown}")
        lines += [f"  {v}" for v in self.verdicts]
        before, after = self.descriptors
        lines.append(
            f"  descriptors besides sockets: {before} before the traffic, {after} after it"
        )
        if self.failures:
            lines.append(
                f"  {len(self.failures)} unaccounted answers or failed checks, first ones:"
            )
            lines += [f"    {f}" for f in self.failures[:20]]
        lines.append("soak: PASSED" if self.passed else "soak: FAILED")
        return "\n".join(lines)


async def soak(args: argparse.Namespace, directory: Path, url: str) -> Report:
    port = free_port()
    env = server_env(url, port, args.password_profile)
    names = [f"soak-user-{i:03d}" for i in range(args.clients)]
    sessions = await provision(env, names)
    log = directory / "server.log"
    async with serve(env, port, log) as pid:
        before = read_process(pid)
        run = Run(f"http://127.0.0.1:{port}", rate=args.rate, timeout=args.timeout)
        clients = [
            Client(run, name, "cookie" if i % 2 else "body", session)
            for i, (name, session) in enumerate(zip(names, sessions, strict=True))
        ]
        samples: list[Sample] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(pid, samples, run.ledger.started, stop))
        until = time.monotonic() + args.duration
        rng = random.Random(args.seed)
        try:
            await asyncio.gather(
                *(run.drive(c, until, random.Random(rng.random())) for c in clients)
            )
        finally:
            stop.set()
            await sampler
            for c in clients:
                await c.close()
        await asyncio.sleep(2)  # the server closes its ends of the connections
        after = read_process(pid)
        left_open = client_connections(pid, port)
    ledger = run.ledger
    for line in server_log_errors(_read(log)):
        ledger.fail(f"server log: {line[:200]}")
    if after.other_fds > before.other_fds + FD_LEFT_OVER:
        ledger.fail(
            f"the server holds {after.other_fds} descriptors besides sockets once the "
            f"clients left, {before.other_fds} before the traffic"
        )
    if left_open:
        ledger.fail(f"the server still holds {left_open} client connections after they left")

    warmup = max(10.0, args.duration * 0.10)
    steady = [s for s in samples if s.at >= warmup]
    p99s = window_p99s(ledger.answers, since=warmup, window=args.window)
    verdicts = []
    try:
        verdicts = [
            judge_flat("RSS bytes", [s.rss_bytes for s in steady], RSS_TOLERANCE),
            judge_flat("descriptors but sockets", [s.other_fds for s in steady], FD_TOLERANCE),
            judge_flat("p99 latency s", p99s, P99_TOLERANCE),
        ]
    except ValueError as exc:
        ledger.fail(str(exc))
    return Report(
        duration=args.duration,
        requests=len(ledger.answers),
        answers=ledger.table(),
        failures=ledger.failures,
        verdicts=verdicts,
        p99_windows=p99s,
        samples=[before, *samples, after],
        descriptors=(before.other_fds, after.other_fds),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of traffic (600)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--clients", type=int, default=16, help="simulated clients (16)")
    parser.add_argument("--rate", type=float, default=80, help="requests per second in all (80)")
    parser.add_argument("--window", type=float, default=5, help="seconds per p99 window (5)")
    parser.add_argument("--timeout", type=float, default=10, help="per request, seconds (10)")
    parser.add_argument(
        "--password-profile",
        default="rfc9106-low-memory",
        help="the server's argon2 profile (default: the product default)",
    )
    parser.add_argument("--seed", type=int, default=1, help="of the traffic mix")
    parser.add_argument("--report", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    if args.duration < 30:
        parser.error("--duration must be at least 30 s: the thirds need samples after warm-up")

    with (
        tempfile.TemporaryDirectory(prefix="keyfob-soak-") as tmp,
        store_url(args.store, Path(tmp)) as url,
    ):
        report = asyncio.run(soak(args, Path(tmp), url))
    print(report.text())
    if args.report:
        args.report.write_text(
            json.dumps(
                {
                    "passed": report.passed,
                    "requests": report.requests,
                    "answers": report.answers,
                    "failures": report.failures,
                    "verdicts": [
                        {"measure": v.measure, "first": v.first, "last": v.last, "flat": v.flat}
                        for v in report.verdicts
                    ],
                    "p99_windows": report.p99_windows,
                    "samples": [[s.at, s.rss_bytes, s.fds, s.sockets] for s in report.samples],
                },
                indent=1,
            )
        )
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
