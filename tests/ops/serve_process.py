"""``keyfob serve`` as a real process for the operations tests: its output captured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.server.uvicorn_process import SECRET, free_port


class ServeProcess:
    """``with ServeProcess(tmp_path, env={...}) as server: server.url ...; server.lines()``"""

    def __init__(
        self,
        directory: Path,
        *,
        workers: int = 1,
        log_level: str = "info",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = directory / f"serve-{self.port}.log"
        self.command = [
            sys.executable, "-m", "keyfob.cli", "serve", "--port", str(self.port),
            "--workers", str(workers), "--log-level", log_level,
        ]  # fmt: skip
        self.env = {
            **os.environ,
            "KEYFOB_STORE_URL": f"sqlite:///{directory / 'keyfob.db'}",
            "KEYFOB_SECRET": SECRET,
            "KEYFOB_ISSUER": self.url,
            "KEYFOB_PASSWORD_PROFILE": "cheapest",
            "KEYFOB_SQLITE_SYNCHRONOUS": "normal",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keyfob serve exited:\n{self.output.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"keyfob serve did not become ready:\n{self.output.read_text()}")

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def lines(self) -> list[str]:
        """Everything the process wrote so far, line by line."""
        return self.output.read_text(encoding="utf-8", errors="replace").splitlines()
