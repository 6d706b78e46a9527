"""keyfob's HTTP benchmark against the refresh-token servers people actually run.

Run it through ``bench/run`` (which installs wrk, the npm and pip peers and matplotlib
first)::

    bench/run            # full: 10 s x 3 rounds per measurement, layers, docs/benchmarks.md
    bench/run --quick    # regression guard: 3 s x 1 round, prints the ratios (< 2 minutes)

What happens:

1. Every server starts pinned to CPU 0 (``taskset``), one worker process each, on its own
   127.0.0.1 port; the load generator (wrk + ``bench/wrk/chain.lua``) runs pinned to CPU 1.
2. Before each refresh measurement the harness logs in ``--chains`` fresh sessions; wrk
   then keeps every chain going: each request presents a refresh token never presented
   before (the one the previous refresh of that chain returned). Protected-route load
   cycles through ``--tokens`` distinct live access tokens of distinct users.
3. Rounds are interleaved (round 1 of every server, then round 2 ...), so a noisy
   neighbour hits everyone alike; every ratio is computed within a round and reported as
   the median over rounds with its range. Non-2xx answers are counted and must be 0.
4. The generator's own ceiling is measured in every round against ``echo_server.c``
   (same script, same modes) and must be at least 3x the fastest rate it measured.
5. ``bench/layers.py`` (keyfob's Python API, no HTTP) adds the per-layer costs.

Results: ``bench/results/<timestamp>/`` (raw JSON and server logs, not committed),
``docs/benchmarks.md`` and ``bench/plots/*.png`` (full mode only, or ``--write-docs``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
LUA = BENCH / "wrk" / "chain.lua"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_BIN = BENCH / ".venv-peers" / "bin"
PLOTS = BENCH / "plots"
DOCS = ROOT / "docs" / "benchmarks.md"

SERVER_CPU = "0"
GENERATOR_CPU = "1"
PASSWORD = "bench-password-0123"
SECRET = "bench-deployment-secret-for-loopback-only-0123456789"
FIRST_PORT = 18100
# The targets: (ratio name, comparison, threshold).
TARGETS: list[tuple[str, str, str, str, float]] = [
    # key, description, kind, op, threshold
    ("refresh/express-hs256-key", "refresh: keyfob ÷ Express HS256 key object", "x", ">=", 1.5),
    ("refresh/express-hs256-tutorial", "refresh: keyfob ÷ Express tutorial HS256", "x", ">=", 7),
    ("refresh/flask-jwt-extended", "refresh: keyfob ÷ flask-jwt-extended", "x", ">=", 4),
    ("refresh/django-simplejwt", "refresh: keyfob ÷ simplejwt", "x", ">=", 30),
    ("protected/express-hs256-key", "protected: keyfob ÷ Express HS256 key object", "x", ">=", 2),
    ("cost/hello-starlette", "refresh cost ÷ hello-world cost (uvicorn+Starlette)", "x", "<=", 3.5),
    ("generator", "load generator ceiling ÷ fastest measured rate", "x", ">=", 3),
]


# --- what is measured -------------------------------------------------------------------


@dataclass
class Target:
    """One server and how to talk to it."""

    key: str
    label: str
    group: str  # keyfob | peer | baseline
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/"
    setup_argv: list[str] | None = None
    worker_is_child: bool = False  # gunicorn: the worker is the arbiter's child
    register_path: str | None = None
    login_path: str | None = None
    login_extra: dict[str, str] = field(default_factory=dict)
    access_from: str = ""  # json:<field>
    refresh_from: str = ""  # json:<field> | cookie:<name>
    refresh_path: str | None = None
    refresh_send: str = ""  # json:<field> | cookie:<name> | bearer
    protected_path: str | None = None
    static_path: str | None = None
    quick: bool = True  # part of --quick
    note: str = ""

    @property
    def modes(self) -> list[str]:
        modes = []
        if self.refresh_path:
            modes.append("refresh")
        if self.protected_path:
            modes.append("protected")
        if self.static_path:
            modes.append("static")
        return modes


def _uvicorn(app_dir: Path, app: str, port_env: str = "{port}") -> list[str]:
    return [
        str(PROJECT_PYTHON), "-m", "uvicorn", "--factory", "--app-dir", str(app_dir), app,
        "--host", "127.0.0.1", "--port", port_env, "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--no-server-header", "--log-level", "warning",
    ]  # fmt: skip


def _gunicorn(app: str) -> list[str]:
    return [
        str(PEERS_BIN / "gunicorn"), "--workers", "1", "--worker-class", "sync",
        "--bind", "127.0.0.1:{port}", "--log-level", "warning", app,
    ]  # fmt: skip


def build_targets(run_dir: Path, synchronous: str, users: int) -> list[Target]:
    node = shutil.which("node") or "node"
    express_env = {"NODE_ENV": "production", "PORT": "{port}", "BENCH_USERS": str(users)}
    keyfob_env = {
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_PASSWORD_PROFILE": "cheapest",
        "KEYFOB_ISSUER": "http://127.0.0.1:{port}",
        "KEYFOB_SQLITE_SYNCHRONOUS": synchronous.lower(),
    }
    keyfob_common: dict[str, Any] = {
        "group": "keyfob",
        "argv": _uvicorn(BENCH, "keyfob_app:create"),
        "cwd": ROOT,
        "ready_path": "/.well-known/jwks.json",
        "register_path": "/auth/register",
        "login_path": "/auth/login",
        "login_extra": {"transport": "body"},
        "access_from": "json:access_token",
        "refresh_from": "json:refresh_token",
        "refresh_path": "/auth/refresh",
        "refresh_send": "json:refresh_token",
        "protected_path": "/auth/me",
    }
    express_common: dict[str, Any] = {
        "group": "peer",
        "argv": [node, "server.js"],
        "cwd": PEERS / "express",
        "ready_path": "/me",
        "login_path": "/login",
        "access_from": "json:accessToken",
        "refresh_from": "cookie:jwt",
        "refresh_path": "/refresh",
        "refresh_send": "cookie:jwt",
        "protected_path": "/me",
    }
    return [
        Target(
            key="keyfob",
            label=f"keyfob (SQLite, synchronous={synchronous.upper()})",
            env={**keyfob_env, "KEYFOB_STORE_URL": f"sqlite:///{run_dir / 'keyfob.db'}"},
            note="uvicorn + Starlette, keyfob's server app, SQLite store (WAL), ES256 tokens",
            **keyfob_common,
        ),
        Target(
            key="keyfob-memory",
            label="keyfob (memory store)",
            env={**keyfob_env, "KEYFOB_STORE_URL": "memory://"},
            quick=False,
            note="the same server on the in-process memory store: what the store costs",
            **keyfob_common,
        ),
        Target(
            key="express-hs256-key",
            label="Express, HS256 key object (Map)",
            env={**express_env, "VARIANT": "hs256-key", "STORE": "map"},
            note="secrets prepared once with crypto.createSecretKey; ETag off",
            **express_common,
        ),
        Target(
            key="express-hs256-tutorial",
            label="Express, tutorial HS256 (Map)",
            env={**express_env, "VARIANT": "hs256-tutorial", "STORE": "map"},
            note="string secret from process.env on every call; Express defaults",
            **express_common,
        ),
        Target(
            key="express-rs256",
            label="Express, RS256 (Map)",
            env={**express_env, "VARIANT": "rs256", "STORE": "map"},
            quick=False,
            note="RS256 2048-bit KeyObjects for both tokens",
            **express_common,
        ),
        Target(
            key="express-hs256-key-sqlite",
            label=f"Express, HS256 key object (better-sqlite3, synchronous={synchronous.upper()})",
            env={
                **express_env,
                "VARIANT": "hs256-key",
                "STORE": "sqlite",
                "SQLITE_PATH": str(run_dir / "express-refresh.db"),
                "SQLITE_SYNCHRONOUS": synchronous.upper(),
            },
            quick=False,
            note="the same as the key-object variant, rotating in SQLite (WAL) like keyfob",
            **express_common,
        ),
        Target(
            key="django-simplejwt",
            label="djangorestframework-simplejwt (rotation + blacklist)",
            group="peer",
            argv=_gunicorn("django_simplejwt:application"),
            cwd=PEERS,
            env={
                "DJANGO_DB": str(run_dir / "django-simplejwt.db"),
                "SQLITE_SYNCHRONOUS": synchronous.upper(),
                "BENCH_USERS": str(users),
            },
            ready_path="/api/me/",
            setup_argv=[str(PEERS_BIN / "python"), "django_simplejwt.py", "setup"],
            worker_is_child=True,
            login_path="/api/token/",
            access_from="json:access",
            refresh_from="json:refresh",
            refresh_path="/api/token/refresh/",
            refresh_send="json:refresh",
            protected_path="/api/me/",
            note="gunicorn, 1 sync worker; SQLite (WAL); ROTATE + BLACKLIST_AFTER_ROTATION",
        ),
        Target(
            key="flask-jwt-extended",
            label="flask-jwt-extended (blocklist)",
            group="peer",
            argv=_gunicorn("flask_jwt_ext:app"),
            cwd=PEERS,
            env={"BENCH_USERS": str(users)},
            ready_path="/me",
            worker_is_child=True,
            login_path="/login",
            access_from="json:access_token",
            refresh_from="json:refresh_token",
            refresh_path="/refresh",
            refresh_send="bearer",
            protected_path="/me",
            note="gunicorn, 1 sync worker; in-process set of revoked refresh jtis",
        ),
        Target(
            key="hello-starlette",
            label="hello world, uvicorn + Starlette",
            group="baseline",
            argv=_uvicorn(PEERS, "hello_starlette:create_app"),
            cwd=ROOT,
            static_path="/",
            note="the same uvicorn flags as keyfob; GET / answers a small JSON object",
        ),
        Target(
            key="generator",
            label="load-generator ceiling (echo server)",
            group="baseline",
            argv=echo_server_argv(),
            cwd=ROOT,
            login_path=None,
            refresh_path="/auth/refresh",
            refresh_send="json:refresh_token",
            refresh_from="json:refresh_token",
            protected_path="/auth/me",
            note="bench/echo_server.c: a canned answer from one epoll thread; what wrk + "
            "chain.lua can drive",
        ),
    ]


def echo_server_argv() -> list[str]:
    """The C echo server, compiled on first use; the Python one where there is no cc."""
    source = BENCH / "echo_server.c"
    binary = BENCH / "results" / "echo_server"
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc and (not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime):
        binary.parent.mkdir(parents=True, exist_ok=True)
        built = subprocess.run([cc, "-O2", "-o", str(binary), str(source)], check=False)
        if built.returncode != 0:
            binary.unlink(missing_ok=True)
    if binary.exists():
        return [str(binary), "{port}"]
    return [str(PROJECT_PYTHON), str(BENCH / "echo_server.py"), "{port}"]


# --- servers ----------------------------------------------------------------------------


def _free_port(start: int) -> int:
    port = start
    while True:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                port += 1
                continue
            return port


def _fill(value: str, port: int) -> str:
    return value.replace("{port}", str(port))


class Server:
    def __init__(self, target: Target, port: int, log_dir: Path) -> None:
        self.target = target
        self.port = port
        self.log_path = log_dir / f"{target.key}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYFOB_")}
        env.update({k: _fill(v, self.port) for k, v in self.target.env.items()})
        return env

    def setup(self) -> None:
        if self.target.setup_argv:
            subprocess.run(
                self.target.setup_argv, cwd=self.target.cwd, env=self._env(), check=True,
                timeout=300,
            )  # fmt: skip

    def start(self) -> None:
        argv = ["taskset", "-c", SERVER_CPU, *(_fill(a, self.port) for a in self.target.argv)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.target.cwd, env=self._env(), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 90) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target.key} exited: {self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", self.target.ready_path)
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.target.key} did not answer in {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def worker_pid(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        if not self.target.worker_is_child:
            return self.proc.pid
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return None
        pids = [int(p) for p in children.split()]
        return pids[0] if pids else None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the worker process (all its threads)."""
        pid = self.worker_pid()
        if pid is None:
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def peak_rss_mib(self) -> float | None:
        pid = self.worker_pid()
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # The server was started in its own session: its process group is its pid.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass


# --- a small HTTP client for logging in (not for load) ------------------------------------


class Client:
    """Keep-alive requests from several threads, one connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._local = threading.local()

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, str, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self._local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            if resp.will_close:
                conn.close()
                self._local.conn = None
            return resp.status, resp.getheader("set-cookie") or "", payload
        raise AssertionError("unreachable")


def _extract(spec: str, cookie: str, body: bytes) -> str:
    kind, _, name = spec.partition(":")
    if kind == "json":
        return str(json.loads(body)[name])
    for part in cookie.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    raise ValueError(f"no {name} cookie in {cookie!r}")


def register_users(server: Server, users: int) -> None:
    target = server.target
    if not target.register_path:
        return
    client = Client(server.port)

    def one(i: int) -> None:
        status, _, body = client.request(
            "POST", target.register_path or "", {"username": f"user{i}", "password": PASSWORD}
        )
        if status not in (201, 409):
            raise RuntimeError(f"{target.key}: register user{i}: {status} {body[:200]!r}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(users)))


def login_many(server: Server, users: Iterable[int]) -> list[tuple[str, str]]:
    """(access, refresh) for a new session of each user."""
    target = server.target
    client = Client(server.port)

    def one(i: int) -> tuple[str, str]:
        body = {"username": f"user{i}", "password": PASSWORD, **target.login_extra}
        status, cookie, payload = client.request("POST", target.login_path or "", body)
        if status != 200:
            raise RuntimeError(f"{target.key}: login user{i}: {status} {payload[:200]!r}")
        return (
            _extract(target.access_from, cookie, payload),
            _extract(target.refresh_from, cookie, payload),
        )

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, users))


# --- load -------------------------------------------------------------------------------


def run_wrk(
    server: Server,
    mode: str,
    tokens: list[str] | None,
    *,
    duration: float,
    connections: int,
    scratch: Path,
) -> dict[str, Any]:
    target = server.target
    if mode == "refresh":
        path, method, send, recv = (
            target.refresh_path or "", "POST", target.refresh_send, target.refresh_from,
        )  # fmt: skip
    elif mode == "protected":
        path, method, send, recv = target.protected_path or "", "GET", "bearer", "none"
    else:
        path, method, send, recv = target.static_path or "", "GET", "none", "none"
    token_file = scratch / f"{target.key}-{mode}.tokens"
    token_file.write_text("".join(t + "\n" for t in tokens or ["-"]))
    cmd = [
        "taskset", "-c", GENERATOR_CPU, "wrk", "-t1", f"-c{connections}",
        f"-d{duration:g}s", "--timeout", "10s", "-s", str(LUA),
        f"http://127.0.0.1:{server.port}", "--", mode, str(token_file), path, method,
        send, recv, "1",
    ]  # fmt: skip
    cpu_before = server.cpu_seconds()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after = server.cpu_seconds()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {target.key}/{mode}: {proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    seconds = result["duration_us"] / 1e6
    ok = result["requests"] - result["non2xx"]
    result["rate"] = ok / seconds
    result["errors"] = sum(
        result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    if cpu_before is not None and cpu_after is not None and result["requests"]:
        result["cpu_us_per_request"] = (cpu_after - cpu_before) / result["requests"] * 1e6
        result["server_busy"] = (cpu_after - cpu_before) / seconds
    # wrk is the only child that ends during the run: its CPU time is the delta.
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    result["generator_busy"] = wrk_cpu / seconds
    return result


# --- the run ----------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    duration: float
    rounds: int
    connections: int
    chains: int
    tokens: int
    synchronous: str
    only: set[str] | None
    layers: bool
    write_docs: bool
    strict: bool


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s x 1 round, core peers only")
    p.add_argument("--duration", type=float, help="seconds per measurement (10; quick 3)")
    p.add_argument("--rounds", type=int, help="interleaved repetitions (3; quick 1)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    p.add_argument("--chains", type=int, default=64, help="refresh-token chains per run (64)")
    p.add_argument("--tokens", type=int, help="distinct access tokens (1000; quick 200)")
    p.add_argument(
        "--synchronous", choices=["full", "normal"], default="full",
        help="SQLite synchronous for every SQLite-backed server (keyfob's default: full)",
    )  # fmt: skip
    p.add_argument("--only", help="comma-separated target keys (keyfob, express-hs256-key, …)")
    p.add_argument("--no-layers", action="store_true", help="skip bench/layers.py")
    p.add_argument("--write-docs", action="store_true", help="write docs even in quick mode")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    a = p.parse_args(argv)
    if a.chains < a.connections:
        p.error("--chains must be at least --connections (every connection needs a token)")
    return Options(
        quick=a.quick,
        duration=a.duration or (3.0 if a.quick else 10.0),
        rounds=a.rounds or (1 if a.quick else 3),
        connections=a.connections,
        chains=a.chains,
        tokens=a.tokens or (200 if a.quick else 1000),
        synchronous=a.synchronous,
        only=set(a.only.split(",")) if a.only else None,
        layers=not a.no_layers,
        write_docs=(a.write_docs or not a.quick) and not a.no_docs,
        strict=a.strict,
    )


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "kernel": platform.release(),
        "load_before": os.getloadavg(),
    }


def versions() -> dict[str, str]:
    out: dict[str, str] = {}

    def cmd(name: str, argv: list[str]) -> None:
        try:
            out[name] = (
                subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
                .stdout.strip()
                .splitlines()[0]
            )
        except (OSError, subprocess.SubprocessError, IndexError):
            out[name] = "?"

    cmd("node", ["node", "--version"])
    cmd("wrk", ["sh", "-c", "wrk --version 2>&1 | head -1"])
    probe = (
        "import importlib.metadata as m, platform;"
        "print(platform.python_version());"
        "[print(n, m.version(n)) for n in {names!r}]"
    )
    for python, names in (
        (PROJECT_PYTHON, ["keyfob", "starlette", "uvicorn", "uvloop", "httptools", "cryptography",
                          "PyJWT"]),
        (PEERS_BIN / "python", ["Django", "djangorestframework", "djangorestframework-simplejwt",
                                "Flask", "Flask-JWT-Extended", "gunicorn", "PyJWT"]),
    ):  # fmt: skip
        try:
            lines = subprocess.run(
                [str(python), "-c", probe.format(names=names)],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout.splitlines()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            continue
        prefix = "keyfob venv" if python == PROJECT_PYTHON else "peers venv"
        out[f"python ({prefix})"] = lines[0]
        for line in lines[1:]:
            name, _, version = line.partition(" ")
            out[f"{name} ({prefix})" if name == "PyJWT" else name] = version
    lock = PEERS / "express" / "package-lock.json"
    try:
        packages = json.loads(lock.read_text())["packages"]
        for name in ("express", "jsonwebtoken", "cookie-parser", "better-sqlite3"):
            out[f"{name} (npm)"] = packages[f"node_modules/{name}"]["version"]
    except (OSError, KeyError, ValueError):
        pass
    return out


def measure(opts: Options, run_dir: Path) -> dict[str, Any]:
    targets = [
        t
        for t in build_targets(run_dir, opts.synchronous, max(1000, opts.tokens, opts.chains))
        if (opts.only is None or t.key in opts.only or t.key == "generator")
        and (t.quick or not opts.quick or (opts.only is not None and t.key in opts.only))
    ]
    servers: list[Server] = []
    port = FIRST_PORT
    for target in targets:
        port = _free_port(port)
        servers.append(Server(target, port, run_dir))
        port += 1
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {t.key: {} for t in targets}
    info: dict[str, Any] = {"targets": {}, "rss_mib": {}}
    scratch = run_dir / "tokens"
    scratch.mkdir(exist_ok=True)
    started = time.monotonic()
    try:
        for server in servers:
            server.setup()
            server.start()
        for server in servers:
            server.wait_ready()
        log(f"{len(servers)} servers up in {time.monotonic() - started:.1f}s")
        pools: dict[str, tuple[float, list[str]]] = {}

        def access_pool(server: Server) -> list[str]:
            """``opts.tokens`` live access tokens of distinct users (renewed after 10 min)."""
            made, pool = pools.get(server.target.key, (0.0, []))
            if not pool or time.monotonic() - made > 600:
                t0 = time.monotonic()
                pool = [a for a, _ in login_many(server, range(opts.tokens))]
                pools[server.target.key] = (time.monotonic(), pool)
                log(f"  {server.target.key}: {len(pool)} access tokens in "
                    f"{time.monotonic() - t0:.1f}s")  # fmt: skip
            return pool

        for server in servers:
            if server.target.register_path:
                t0 = time.monotonic()
                register_users(server, max(opts.tokens, opts.chains))
                log(f"  {server.target.key}: users registered in {time.monotonic() - t0:.1f}s")
            if server.target.login_path and server.target.protected_path:
                access_pool(server)

        echo_refresh = ["kfrt_" + "A" * 86] * opts.chains
        echo_access = ["e" * 300]
        for rnd in range(opts.rounds):
            shift = rnd % len(servers)
            order = servers[shift:] + servers[:shift]
            log(f"round {rnd + 1}/{opts.rounds}")
            for server in order:
                target = server.target
                for mode in target.modes:
                    if target.key == "generator":
                        tokens = echo_refresh if mode == "refresh" else echo_access
                    elif mode == "refresh":
                        chain_users = [
                            (rnd * opts.chains + i) % opts.tokens for i in range(opts.chains)
                        ]
                        tokens = [r for _, r in login_many(server, chain_users)]
                    elif mode == "protected":
                        tokens = access_pool(server)
                    else:
                        tokens = None
                    result = run_wrk(
                        server, mode, tokens, duration=opts.duration,
                        connections=opts.connections, scratch=scratch,
                    )  # fmt: skip
                    result["round"] = rnd
                    runs[target.key].setdefault(mode, []).append(result)
                    flag = "" if result["non2xx"] == 0 and result["errors"] == 0 else "  (!)"
                    log(f"  {target.key:26} {mode:9} {result['rate']:9.0f} req/s  "
                        f"non2xx={result['non2xx']} errors={result['errors']}{flag}")  # fmt: skip
        for server in servers:
            info["rss_mib"][server.target.key] = server.peak_rss_mib()
    finally:
        for server in servers:
            server.stop()
    for target in targets:
        info["targets"][target.key] = {
            "label": target.label,
            "group": target.group,
            "note": target.note,
            "modes": target.modes,
        }
    return {"runs": runs, **info}


def log(message: str) -> None:
    print(message, flush=True)


# --- numbers ----------------------------------------------------------------------------


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["rate"] for r in runs]
    cpu = [r["cpu_us_per_request"] for r in runs if "cpu_us_per_request" in r]
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "stdev": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        "rates": rates,
        "cpu_us": statistics.median(cpu) if cpu else None,
        "server_busy": _median_of(runs, "server_busy"),
        "generator_busy": _median_of(runs, "generator_busy"),
        "p50_ms": statistics.median(r["latency_us"]["p50"] for r in runs) / 1000,
        "p99_ms": statistics.median(r["latency_us"]["p99"] for r in runs) / 1000,
        "non2xx": sum(r["non2xx"] for r in runs),
        "missing": sum(r["missing"] for r in runs),
        "notoken": sum(r["notoken"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
    }


def per_round_ratio(
    a: list[dict[str, Any]], b: list[dict[str, Any]], invert: bool = False, key: str = "rate"
) -> dict[str, Any] | None:
    """Median and range of a[key] / b[key] (or its inverse), pairing runs of one round."""
    by_round = {r["round"]: r.get(key) for r in b}
    ratios = []
    for r in a:
        other = by_round.get(r["round"])
        mine = r.get(key)
        if other and mine:
            ratios.append(other / mine if invert else mine / other)
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def _generator_headroom(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per round: the generator's slowest ceiling over the fastest rate measured."""
    rounds = sorted({r["round"] for rs in runs["generator"].values() for r in rs})
    per_round = []
    for rnd in rounds:
        ceiling = min(
            r["rate"] for rs in runs["generator"].values() for r in rs if r["round"] == rnd
        )
        fastest = max(
            (
                r["rate"]
                for key, modes in runs.items()
                if key != "generator"
                for rs in modes.values()
                for r in rs
                if r["round"] == rnd
            ),
            default=0.0,
        )
        if fastest:
            per_round.append((ceiling / fastest, ceiling, fastest))
    ratios = [x[0] for x in per_round]
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "ceiling": statistics.median(x[1] for x in per_round),
        "fastest": statistics.median(x[2] for x in per_round),
    }


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    """Summaries, ratios within rounds (by rate and by server CPU per request), targets.

    ``cpu_ratios`` compare the worker's CPU time per request, which other processes on
    the machine disturb much less than the rate; for keyfob ÷ peer they are oriented like
    the rate ratios (peer CPU ÷ keyfob CPU: above 1 means keyfob is cheaper).
    """
    runs = data["runs"]
    summary = {
        key: {mode: summarize(r) for mode, r in modes.items()} for key, modes in runs.items()
    }
    ratios: dict[str, Any] = {}
    cpu_ratios: dict[str, Any] = {}
    cpu = "cpu_us_per_request"
    kf = runs.get("keyfob", {})
    for key, modes in runs.items():
        if key in ("keyfob", "generator", "hello-starlette"):
            continue
        for mode in ("refresh", "protected"):
            if mode in kf and mode in modes:
                ratios[f"{mode}/{key}"] = per_round_ratio(kf[mode], modes[mode])
                cpu_ratios[f"{mode}/{key}"] = per_round_ratio(
                    kf[mode], modes[mode], invert=True, key=cpu
                )
    if "refresh" in kf and "static" in runs.get("hello-starlette", {}):
        # cost ratio: (1/keyfob rate) / (1/hello rate) = hello rate / keyfob rate
        hello = runs["hello-starlette"]["static"]
        ratios["cost/hello-starlette"] = per_round_ratio(kf["refresh"], hello, invert=True)
        cpu_ratios["cost/hello-starlette"] = per_round_ratio(kf["refresh"], hello, key=cpu)
    if runs.get("generator"):
        ratios["generator"] = _generator_headroom(runs)
    # The same refresh ratios for keyfob on the memory store: the route without a durable
    # write, i.e. how much of a shortfall is the store's.
    memory_ratios: dict[str, Any] = {}
    km = runs.get("keyfob-memory", {})
    if "refresh" in km:
        for key, modes in runs.items():
            if key.startswith("keyfob") or key == "generator" or "refresh" not in modes:
                continue
            memory_ratios[f"refresh/{key}"] = per_round_ratio(km["refresh"], modes["refresh"])
        if "static" in runs.get("hello-starlette", {}):
            hello = runs["hello-starlette"]["static"]
            memory_ratios["cost/hello-starlette"] = per_round_ratio(
                km["refresh"], hello, invert=True
            )
    checks = []
    for key, desc, _, op, threshold in TARGETS:
        r = ratios.get(key)
        if r is None:
            checks.append({"key": key, "desc": desc, "op": op, "target": threshold, "ok": None})
            continue
        value = r["median"]
        ok = value >= threshold if op == ">=" else value <= threshold
        check = {"key": key, "desc": desc, "op": op, "target": threshold, "ok": ok, **r}
        c = cpu_ratios.get(key)
        if c is not None:
            check["cpu"] = c
            check["cpu_ok"] = c["median"] >= threshold if op == ">=" else c["median"] <= threshold
        if key in memory_ratios:
            check["memory"] = memory_ratios[key]
        checks.append(check)
    bad = {
        key: s
        for key, modes in summary.items()
        for s in modes.values()
        if s["non2xx"] or s["missing"] or s["notoken"] or s["errors"]
    }
    return {
        "summary": summary,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "checks": checks,
        "failed_requests": list(bad),
    }


def print_report(data: dict[str, Any], analysis: dict[str, Any]) -> None:
    summary = analysis["summary"]
    base = summary.get("express-hs256-key", {})
    log("\nreq/s (median of rounds; ratio to Express HS256 key object in the same run)")
    for mode in ("refresh", "protected", "static"):
        for key, modes in summary.items():
            if mode not in modes:
                continue
            s = modes[mode]
            ref = base.get(mode, {}).get("median")
            ratio = f"{s['median'] / ref:6.2f}x" if ref else "      -"
            cpu = f"{s['cpu_us']:7.0f} us cpu/req" if s["cpu_us"] is not None else ""
            if s["server_busy"] is not None and s["generator_busy"] is not None:
                cpu += f"  busy: server {s['server_busy']:.0%} wrk {s['generator_busy']:.0%}"
            log(f"  {mode:9} {key:26} {s['median']:9.0f}  [{s['min']:.0f}-{s['max']:.0f}]"
                f"  {ratio}  non2xx={s['non2xx']}  {cpu}")  # fmt: skip
    log("\ntargets (ratios measured within each round; median [min-max])")
    for c in analysis["checks"]:
        if c["ok"] is None:
            log(f"  n/a   {c['desc']}")
            continue
        mark = "PASS" if c["ok"] else "MISS"
        by_cpu = f"; by server CPU {c['cpu']['median']:.2f}x" if "cpu" in c else ""
        log(f"  {mark}  {c['desc']}: {c['median']:.2f}x [{c['min']:.2f}-{c['max']:.2f}]"
            f"{by_cpu}  (target {c['op']} {c['target']:g}x)")  # fmt: skip
    if analysis["failed_requests"]:
        log(f"\nFAILED REQUESTS in: {', '.join(analysis['failed_requests'])}")


# --- layers -----------------------------------------------------------------------------


def run_layers(opts: Options, run_dir: Path) -> dict[str, Any] | None:
    out = run_dir / "layers.json"
    cmd = [
        "taskset", "-c", SERVER_CPU, str(PROJECT_PYTHON), str(BENCH / "layers.py"),
        "--json", str(out), "--synchronous", opts.synchronous,
    ]  # fmt: skip
    if opts.quick:
        cmd += ["--quick", "--no-postgres"]
    log("\nlayers: " + " ".join(cmd[3:]))
    proc = subprocess.run(cmd, cwd=ROOT, timeout=3600)
    if proc.returncode != 0 or not out.exists():
        log("layers failed; see above")
        return None
    return json.loads(out.read_text())


# --- main -------------------------------------------------------------------------------


def preflight() -> None:
    missing = [tool for tool in ("wrk", "node", "taskset") if shutil.which(tool) is None]
    for path in (PROJECT_PYTHON, PEERS_BIN / "python", PEERS / "express" / "node_modules"):
        if not path.exists():
            missing.append(str(path.relative_to(ROOT)))
    if missing:
        sys.exit(f"missing: {', '.join(missing)}; run bench/run (it installs them)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("the benchmark pins the server and the load generator to two different CPUs")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    preflight()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = BENCH / "results" / (stamp + ("-quick" if opts.quick else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "options": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(opts).items()},
        "machine": machine(),
        "versions": versions(),
    }
    m = data["machine"]
    log(f"keyfob benchmark -> {run_dir.relative_to(ROOT)}  ({m['cpu']}, {m['cores']} cores; "
        f"load {m['load_before'][0]:.2f})")  # fmt: skip
    data.update(measure(opts, run_dir))
    data["machine"]["load_after"] = os.getloadavg()
    analysis = analyse(data)
    data["analysis"] = analysis
    print_report(data, analysis)
    if opts.layers:
        data["layers"] = run_layers(opts, run_dir)
    data["elapsed_s"] = time.monotonic() - t0
    (run_dir / "results.json").write_text(json.dumps(data, indent=1, default=str))
    if opts.write_docs:
        from report import write_report  # bench/report.py: markdown + plots

        write_report(data, DOCS, PLOTS)
        log(f"wrote {DOCS.relative_to(ROOT)} and {PLOTS.relative_to(ROOT)}/")
    log(f"done in {data['elapsed_s']:.0f}s; raw results in {run_dir.relative_to(ROOT)}")
    if analysis["failed_requests"]:
        return 1
    if opts.strict and any(c["ok"] is False for c in analysis["checks"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
