"""Run the real server in uvicorn processes on 127.0.0.1 for end-to-end tests.

``UvicornProcess`` starts ``python -m uvicorn keyfob.server.app:app_from_env --factory
--no-proxy-headers`` (or, with ``serve=True``, ``keyfob serve`` itself, with its HTTP
limits) with ``KEYFOB_*`` variables on a free port, waits until it answers, and stops it
(the supervisor stops its workers). ``worker_of`` tells which worker process holds the
server end of a client's connection, from ``/proc`` (Linux), so a test can address each
worker of ``--workers 2`` deliberately.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

SECRET = "process-test-secret-process-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UvicornProcess:
    """``with UvicornProcess(tmp_path, workers=2) as server: server.url ...``"""

    def __init__(
        self,
        directory: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        serve: bool = False,
        log_level: str = "warning",
    ):
        self.serve = serve
        self.log_level = log_level
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log = directory / f"uvicorn-{self.port}.log"
        self.env = {
            **os.environ,
            "KEYFOB_STORE_URL": f"sqlite:///{directory / 'keyfob.db'}",
            "KEYFOB_SECRET": SECRET,
            "KEYFOB_ISSUER": self.url,
            "KEYFOB_PASSWORD_PROFILE": "cheapest",
            "KEYFOB_SQLITE_SYNCHRONOUS": "normal",
            "KEYFOB_ACCESS_LOG": "off",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> UvicornProcess:
        self.start()
        self._wait_ready()
        return self

    def start(self) -> None:
        """Start the process without waiting for it (see :meth:`wait_ready`): several
        servers then start side by side."""
        where = ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        if self.serve:
            command = [
                sys.executable, "-m", "keyfob.cli", "serve", *where, "--log-level", self.log_level,
            ]  # fmt: skip
        else:
            command = [
                sys.executable, "-m", "uvicorn", "keyfob.server.app:app_from_env", "--factory",
                *where, "--no-proxy-headers", "--no-access-log", "--log-level", self.log_level,
            ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server started by :meth:`start` answers."""
        self._wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown, no cleanup) and reap it."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited early:\n{self.output()}")
            try:
                r = httpx.get(self.url + "/.well-known/jwks.json", timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            # With several workers, also wait until each one holds the listening socket.
            if r.status_code == 200 and len(self.listening_workers()) >= self.workers:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"uvicorn did not become ready:\n{self.output()}")

    def worker_pids(self) -> list[int]:
        """The processes serving requests: the workers, or the server itself with one."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        return _children(self.process.pid)

    def listening_workers(self) -> list[int]:
        return [pid for pid in self.worker_pids() if _socket_inodes(pid)]

    def worker_of(self, client_port: int) -> int | None:
        """The worker whose socket is the server end of the connection from ``client_port``."""
        inodes = _server_side_inodes(self.port, client_port)
        for pid in self.worker_pids():
            if _socket_inodes(pid) & inodes:
                return pid
        return None


def _children(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command may contain spaces and parentheses; the ppid follows the last ')'.
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            children.append(int(entry))
    return children


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def _server_side_inodes(server_port: int, client_port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            remote_port = int(fields[2].rpartition(":")[2], 16)
            if local_port == server_port and remote_port == client_port:
                inodes.add(int(fields[9]))
    return inodes


def client_port(response: httpx.Response) -> int:
    """The local port of the connection a response came over."""
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])
