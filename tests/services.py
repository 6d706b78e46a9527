"""Throwaway PostgreSQL and Redis servers for tests, and session-scoped fixtures for them.

Each server runs from the Debian binaries in a temporary directory, on 127.0.0.1 with a
free port, owned by this test run: it is started as a child process, stopped by its pid
and its directory removed on teardown. Nothing touches a system-wide cluster or service.

Import the fixtures into ``tests/conftest.py``::

    from tests.services import postgres_server, redis_server  # noqa: F401 (fixtures)

When a binary is missing the fixture skips with what to install, or fails under CI
(``CI=true``), where a missing server is a broken pipeline rather than a choice.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "free_port",
    "postgres_server",
    "redis_server",
    "require_binary",
]

#: Debian's postgresql-15 package; other major versions are used when 15 is absent.
PG_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    *sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True),
)
#: initdb and postgres refuse to run as root; as root, the cluster belongs to this user.
PG_UNPRIVILEGED_USER = "nobody"
READY_TIMEOUT = 30.0


class ServiceError(RuntimeError):
    """A throwaway server could not be started or stopped."""


def unavailable(message: str, *, allow_module_level: bool = False) -> NoReturn:
    """Something a test needs is missing: fail under CI (``CI=true``), skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (required in CI)", pytrace=False)
    pytest.skip(message, allow_module_level=allow_module_level)


def require_binary(path: str | None, what: str, install: str) -> str:
    """``path`` if it exists; otherwise skip the test (fail it under CI) saying what to install."""
    if path is not None and os.access(path, os.X_OK):
        return path
    unavailable(f"{what} is not installed: {install}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Signal the process we started (by its pid) and wait for it; kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory: ``initdb``, then ``postgres`` as a child.

    Superuser ``postgres`` with ``trust`` authentication on 127.0.0.1 only; the Unix socket
    lives in the temporary directory. ``fsync=False`` (the default) trades safety against a
    machine crash for speed; durability tests that mean power loss pass ``fsync=True``.
    :meth:`stop` and :meth:`start` restart it on the same port and data, for tests of a
    server that goes away and comes back.
    """

    user = "postgres"

    def __init__(
        self, *, fsync: bool = False, extra_settings: dict[str, str] | None = None
    ) -> None:
        self.fsync = fsync
        self.extra_settings = dict(extra_settings or {})
        self.bin_dir = self._find_bin_dir()
        self.port = 0
        self.host = "127.0.0.1"
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}

    @staticmethod
    def _find_bin_dir() -> str | None:
        for d in PG_BIN_DIRS:
            if os.access(os.path.join(d, "postgres"), os.X_OK):
                return d
        return None

    @property
    def data_dir(self) -> Path:
        return self._dir / "data"

    @property
    def log_path(self) -> Path:
        """The server's log (stderr): ``log_statement`` output lands here."""
        return self._dir / "postgres.log"

    @property
    def _dir(self) -> Path:
        if self._tmp is None:
            raise ServiceError("the PostgreSQL server was never set up")
        return self._tmp

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> PostgresServer:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def setup(self) -> None:
        """Create the cluster and start the server."""
        binary = require_binary(
            None if self.bin_dir is None else os.path.join(self.bin_dir, "initdb"),
            "PostgreSQL (initdb, postgres)",
            "apt-get install postgresql",
        )
        self._tmp = Path(tempfile.mkdtemp(prefix="keyfob-pg-"))
        try:
            if os.geteuid() == 0:
                entry = pwd.getpwnam(PG_UNPRIVILEGED_USER)
                os.chown(self._tmp, entry.pw_uid, entry.pw_gid)
                self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            self._run(
                [
                    binary,
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
            self.port = free_port()
            self.start()
        except BaseException:
            self.teardown()
            raise

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(
            argv,
            cwd=self._dir,
            capture_output=True,
            check=False,
            timeout=120,
            **self._run_as,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                + (result.stderr or result.stdout).decode(errors="replace")[-2000:]
            )

    def start(self) -> None:
        """Start the server on :attr:`port` and wait until it accepts connections."""
        if self.running:
            return
        assert self.bin_dir is not None
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self._dir),
            # fsync=off only risks data if the machine crashes; commits still reach the
            # kernel before they are acknowledged (synchronous_commit stays on), so a
            # server that is killed (stop(mode="immediate")) loses nothing it confirmed.
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "log_line_prefix": "%m [%p] ",
            **self.extra_settings,
        }
        argv = [os.path.join(self.bin_dir, "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps writing to it)
        try:
            self._proc = subprocess.Popen(
                argv,
                cwd=self._dir,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                **self._run_as,
            )
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.bin_dir is not None and self._proc is not None
        isready = os.path.join(self.bin_dir, "pg_isready")
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"PostgreSQL exited with {self._proc.returncode}: {self._log_tail()}"
                )
            result = subprocess.run(
                [isready, "-q", "-h", self.host, "-p", str(self.port), "-U", self.user],
                capture_output=True,
                check=False,
                timeout=10,
            )
            if result.returncode == 0:
                return
            time.sleep(0.05)
        raise ServiceError(f"PostgreSQL did not become ready: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (SIGINT) ends sessions cleanly, ``immediate`` (SIGQUIT)
        is a crash-like stop."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_process(proc, signal.SIGQUIT if mode == "immediate" else signal.SIGINT, 30)

    def teardown(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class RedisServer:
    """``redis-server`` on 127.0.0.1 with a free port, no persistence, in a temporary dir."""

    BINARY_NAMES = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")

    def __init__(self) -> None:
        self.binary = next((b for b in self.BINARY_NAMES if os.access(b, os.X_OK)), None)
        if self.binary is None:
            self.binary = shutil.which("redis-server")
        self.host = "127.0.0.1"
        self.port = 0
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> RedisServer:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def setup(self) -> None:
        require_binary(self.binary, "Redis (redis-server)", "apt-get install redis-server")
        self._tmp = Path(tempfile.mkdtemp(prefix="keyfob-redis-"))
        self.port = free_port()
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise

    def start(self) -> None:
        if self.running:
            return
        assert self.binary is not None and self._tmp is not None
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self._tmp),
            "--logfile", str(self._tmp / "redis.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(f"redis-server exited with {self._proc.returncode}")
            if self._ping():
                return
            time.sleep(0.02)
        raise ServiceError("redis-server did not answer PING")

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_process(proc, signal.SIGTERM, 10)

    def teardown(self) -> None:
        self.stop()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole run (``fsync=off``)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway Redis server for the whole run."""
    with RedisServer() as server:
        yield server
