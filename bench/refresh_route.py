"""A first measurement of keyfob's refresh route: requests/s on one uvicorn worker.

Compares, in one run and on the same stack (Starlette on uvicorn with uvloop and
httptools, one worker, loopback):

- ``starlette hello`` / ``fastapi hello``: ``GET /hello`` answering ``{"hello":"world"}``
  on plain Starlette and on FastAPI;
- ``starlette body parse`` / ``fastapi body model``: ``POST /echo`` with a refresh
  request's JSON body, parsed by hand (as keyfob does) or by a pydantic model;
- ``me``: ``GET /auth/me`` of keyfob (a protected route: verify an ES256 access token);
- ``refresh``: ``POST /auth/refresh`` of keyfob with the token in the JSON body. Every
  connection owns one session and presents each refresh token exactly once: the next
  request carries the token the previous answer returned (a chain), so every request
  is a real rotation (MAC check, one conditional UPDATE, a new access token).

Each server runs pinned to CPU 0 and the load generator (asyncio on raw sockets, one
process) to CPU 1 when ``taskset`` exists. Modes run interleaved for ``--rounds`` rounds;
the median is reported, with the server process's CPU time per request (user + system,
all threads, from /proc), which other load on a shared machine disturbs much less than
the rate. Any answer other than 200 is counted and reported. The rate
limits stay on (their cost is part of the route) but are raised above the load.

    .venv/bin/python bench/refresh_route.py [--seconds 5] [--connections 16] [--rounds 3]
        [--store sqlite-normal|sqlite-full|memory]

Loopback only; every loop is bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PASSWORD = "bench password, long enough"
SECRET = "bench-secret-bench-secret-bench-secret-0123456789"
BENCH_DIR = Path(__file__).resolve().parent
ECHO_BODY = b'{"refresh_token":"kfrt_' + b"A" * 93 + b'"}'


# the servers (factories for `uvicorn --factory --app-dir bench refresh_route:...`)


def keyfob_app() -> Starlette:
    """keyfob from KEYFOB_* variables, with the rate limits raised above the load."""
    from keyfob.server import RateLimits, create_app
    from keyfob.settings import Settings

    many = "100000000/minute"
    limits = RateLimits(
        login_per_address=many,
        login_failures_per_account=many,
        register_per_address=many,
        refresh_per_session=many,
    )
    return create_app(Settings.from_env(), rate_limits=limits)


def hello_app() -> Starlette:
    """Plain Starlette: a hello world, and the body parse of a refresh done by hand."""

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    async def echo(request: Request) -> JSONResponse:
        data = json.loads(await request.body())
        if not isinstance(data, dict) or not isinstance(data.get("refresh_token"), str):
            return JSONResponse({"error": "invalid_request"}, 400)
        return JSONResponse({"length": len(data["refresh_token"])})

    return Starlette(routes=[Route("/hello", hello), Route("/echo", echo, methods=["POST"])])


class RefreshRequest(BaseModel):
    refresh_token: str


def fastapi_app() -> Starlette:
    """The same two routes on FastAPI, the body validated by a pydantic model."""
    app = FastAPI(openapi_url=None)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/echo")
    async def echo(body: RefreshRequest) -> dict[str, int]:
        return {"length": len(body.refresh_token)}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def uvicorn(factory: str, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", f"refresh_route:{factory}", "--factory",
        "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(pinned(0, command), env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None:
                raise RuntimeError(f"{factory} exited with {process.returncode}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{factory} did not start")
        yield port, process.pid  # taskset execs uvicorn: the same process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# the load generator: HTTP/1.1 keep-alive on raw asyncio streams


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        self.writer.close()


async def measure(
    mode: str, port: int, pid: int, connections: int, seconds: float
) -> dict[str, float]:
    """Requests/s of ``mode`` over ``connections`` keep-alive connections for ``seconds``,
    and the server's CPU time per request (which other load on the machine disturbs far
    less than the rate)."""
    conns = [await Connection.open(port) for _ in range(connections)]
    json_headers = "Content-Type: application/json\r\n"
    state: list[str] = []
    if mode in {"me", "refresh"}:
        login = json.dumps({"username": "bench", "password": PASSWORD, "transport": "body"})
        for conn in conns:
            status, body = await conn.request("POST", "/auth/login", login.encode(), json_headers)
            assert status == 200, body
            answer = json.loads(body)
            state.append(answer["refresh_token"] if mode == "refresh" else answer["access_token"])
    counts = [0] * connections
    errors = [0] * connections
    stop = time.monotonic() + seconds

    async def run(i: int) -> None:
        conn = conns[i]
        while time.monotonic() < stop:
            if mode == "hello":
                status, body = await conn.request("GET", "/hello")
            elif mode == "echo":
                status, body = await conn.request("POST", "/echo", ECHO_BODY, json_headers)
            elif mode == "me":
                status, body = await conn.request(
                    "GET", "/auth/me", headers=f"Authorization: Bearer {state[i]}\r\n"
                )
            else:
                payload = b'{"refresh_token":"' + state[i].encode() + b'"}'
                status, body = await conn.request("POST", "/auth/refresh", payload, json_headers)
                if status == 200:
                    state[i] = json.loads(body)["refresh_token"]
            counts[i] += 1
            if status != 200:
                errors[i] += 1
                if mode == "refresh":
                    return  # the chain is broken; the error is reported

    started, cpu = time.monotonic(), cpu_seconds(pid)
    await asyncio.gather(*(run(i) for i in range(connections)))
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    for conn in conns:
        conn.close()
    requests = sum(counts)
    return {
        "rps": requests / elapsed,
        "cpu_us": cpu / requests * 1e6,
        "requests": requests,
        "errors": sum(errors),
    }


async def register(port: int) -> None:
    conn = await Connection.open(port)
    body = json.dumps({"username": "bench", "password": PASSWORD}).encode()
    status, answer = await conn.request(
        "POST", "/auth/register", body, "Content-Type: application/json\r\n"
    )
    assert status == 201, answer
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--store", choices=["sqlite-normal", "sqlite-full", "memory"], default="sqlite-normal"
    )
    args = parser.parse_args()
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    with tempfile.TemporaryDirectory() as tmp:
        store = "memory://" if args.store == "memory" else f"sqlite:///{Path(tmp) / 'bench.db'}"
        env = {
            "KEYFOB_STORE_URL": store,
            "KEYFOB_SECRET": SECRET,
            "KEYFOB_ISSUER": "http://127.0.0.1",
            "KEYFOB_PASSWORD_PROFILE": "cheapest",
            "KEYFOB_SQLITE_SYNCHRONOUS": args.store.removeprefix("sqlite-")
            if args.store != "memory"
            else "normal",
        }
        # label: (server, mode)
        runs = {
            "starlette hello": ("hello_app", "hello"),
            "fastapi hello": ("fastapi_app", "hello"),
            "starlette body parse": ("hello_app", "echo"),
            "fastapi body model": ("fastapi_app", "echo"),
            "keyfob /auth/me": ("keyfob_app", "me"),
            "keyfob /auth/refresh": ("keyfob_app", "refresh"),
        }
        results: dict[str, list[dict[str, float]]] = {label: [] for label in runs}
        with (
            uvicorn("hello_app", {}) as hello_port,
            uvicorn("fastapi_app", {}) as fastapi_port,
            uvicorn("keyfob_app", env) as keyfob_port,
        ):
            ports = {
                "hello_app": hello_port,
                "fastapi_app": fastapi_port,
                "keyfob_app": keyfob_port,
            }
            asyncio.run(register(keyfob_port[0]))
            for _ in range(args.rounds):
                for label, (server, mode) in runs.items():
                    port, pid = ports[server]
                    outcome = measure(mode, port, pid, args.connections, args.seconds)
                    results[label].append(asyncio.run(outcome))
    print(
        f"one uvicorn worker (uvloop, httptools), {args.connections} connections, "
        f"{args.rounds} x {args.seconds:g} s, store {args.store}"
    )
    hello_cpu = statistics.median(r["cpu_us"] for r in results["starlette hello"])
    print(f"  {'':22} {'req/s':>8}  {'[min-max]':>13}  {'CPU us/req':>10}  {'x hello':>7}  non-200")
    for label, rounds in results.items():
        rps = statistics.median(r["rps"] for r in rounds)
        cpu = statistics.median(r["cpu_us"] for r in rounds)
        spread = f"{min(r['rps'] for r in rounds):,.0f}-{max(r['rps'] for r in rounds):,.0f}"
        errors = sum(r["errors"] for r in rounds)
        print(
            f"  {label:22} {rps:8,.0f}  {spread:>13}  {cpu:10,.0f}  {cpu / hello_cpu:6.2f}x  "
            f"{errors:7.0f}"
        )


if __name__ == "__main__":
    main()
