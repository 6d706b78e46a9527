"""A throwaway PgBouncer (Debian's ``pgbouncer`` package) in transaction pooling mode.

It listens on 127.0.0.1 only, in front of a :class:`tests.services.PostgresServer`, with a
generated config and auth file in a temporary directory, and is stopped (by its pid) on
exit. Under ``CI=true`` a missing binary fails the test (:func:`tests.services.unavailable`).
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
from pathlib import Path

from tests.services import (
    PG_UNPRIVILEGED_USER,
    PostgresServer,
    free_port,
    require_binary,
    unavailable,
)

__all__ = ["PgBouncer"]


class PgBouncer:
    """``pool_mode = transaction`` with few server connections, so clients share them."""

    def __init__(self, server: PostgresServer, *, server_connections: int = 3) -> None:
        self.server = server
        self.server_connections = server_connections
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.server.user}@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> PgBouncer:
        binary = require_binary(
            shutil.which("pgbouncer") or "/usr/sbin/pgbouncer",
            "PgBouncer",
            "apt-get install -y pgbouncer",
        )
        self._dir = tempfile.TemporaryDirectory(prefix="keyfob-pgbouncer-")
        home = Path(self._dir.name)
        self.port = free_port()
        # The server trusts local connections; PgBouncer still wants the user listed.
        (home / "userlist.txt").write_text(f'"{self.server.user}" ""\n')
        # PgBouncer refuses to run as root: then it runs as the throwaway cluster's user.
        run_as: dict[str, object] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_UNPRIVILEGED_USER)
            run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            os.chown(home, entry.pw_uid, entry.pw_gid)
        (home / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.server.host} port={self.server.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {home / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.server_connections}\n"
            "max_client_conn = 200\n"
            # asyncpg sends these as startup parameters; PgBouncer refuses unknown ones.
            "ignore_startup_parameters = statement_timeout,lock_timeout\n"
        )
        log = (home / "pgbouncer.log").open("wb")
        try:
            self._proc = subprocess.Popen(
                [binary, str(home / "pgbouncer.ini")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                **run_as,  # type: ignore[call-overload]
            )
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    output = (home / "pgbouncer.log").read_text(errors="replace")
                    self.__exit__()
                    unavailable(f"PgBouncer did not start: {output[-2000:]}")
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # PgBouncer's "shut down now"
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
