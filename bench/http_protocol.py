"""What keyfob serve's HTTP protocol costs on the refresh and protected paths.

Compares, in interleaved rounds on the harness's machinery (server pinned to CPU 0, wrk
to CPU 1, the chain script, CPU time of the server process per request):

- ``httptools``: uvicorn's httptools protocol with its default proxy-headers middleware,
  as keyfob serve ran before issue 12.4;
- ``limited``: keyfob serve's protocol today, :class:`keyfob.server.http11.LimitedHttpToolsProtocol`
  (head size limit, read timeout, JSON refusals) with uvicorn's proxy headers off;
- ``limited+cap``: the same with ``--limit-concurrency 1000`` (the default cap);
- ``h11``: uvicorn's h11 protocol (which has a head limit but no timeout), for reference.

Run with keyfob's venv (wrk installed)::

    .venv/bin/python bench/http_protocol.py [--duration 5] [--rounds 3]

On a busy machine the end-to-end numbers swing by more than the protocol's share of a
request; ``--micro`` isolates it: the same canned refresh request fed to each protocol
class in process (an in-memory transport, a two-line ASGI app, uvloop), CPU time per
request, interleaved rounds::

    .venv/bin/python bench/http_protocol.py --micro
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

LIMITED = "keyfob.server.http11:LimitedHttpToolsProtocol"


def variants(base: list[str]) -> dict[str, list[str]]:
    def with_http(http: str, *extra: str) -> list[str]:
        argv = list(base)
        argv[argv.index("--http") + 1] = http
        return [*argv, *extra]

    return {
        "httptools": with_http("httptools"),
        "limited": with_http(LIMITED, "--no-proxy-headers"),
        "limited+cap": with_http(LIMITED, "--no-proxy-headers", "--limit-concurrency", "1000"),
        "h11": with_http("h11", "--no-proxy-headers"),
    }


_BODY = b'{"refresh_token":"kfrt_' + b"A" * 93 + b'"}'
_REQUEST = (
    b"POST /auth/refresh HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\n"
    b"Content-Type: application/json\r\nContent-Length: " + str(len(_BODY)).encode()
    + b"\r\n\r\n" + _BODY
)  # fmt: skip


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


class _Transport:
    """Just enough of an asyncio transport for a protocol to answer into."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def micro(rounds: int = 21, requests: int = 20000) -> None:
    import asyncio

    import uvloop
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from keyfob.server.http11 import LimitedHttpToolsProtocol

    def factory(cls: type, proxy_headers: bool) -> Any:
        config = Config(app=_app, proxy_headers=proxy_headers, log_level="warning")
        config.load()
        return lambda loop: cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)

    variants = {
        "httptools + proxy headers (before)": factory(HttpToolsProtocol, True),
        "httptools, proxy headers off": factory(HttpToolsProtocol, False),
        "limited + proxy headers": factory(LimitedHttpToolsProtocol, True),
        "limited, proxy headers off (now)": factory(LimitedHttpToolsProtocol, False),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}

    async def one(make: Any) -> float:
        protocol = make(asyncio.get_running_loop())
        transport = _Transport()
        protocol.connection_made(transport)
        started = time.process_time()
        for _ in range(requests):
            protocol.data_received(_REQUEST)
            for _ in range(3):  # the request task: receive, start, body
                await asyncio.sleep(0)
        used = time.process_time() - started
        protocol.connection_lost(None)
        assert transport.writes >= requests
        return used / requests * 1e6

    async def all_rounds() -> None:
        for _ in range(rounds):
            for name, make in variants.items():
                results[name].append(await one(make))

    uvloop.run(all_rounds())
    base = statistics.median(results["httptools + proxy headers (before)"])
    print("median CPU per request (µs) of the protocol and a bare app; before ÷ variant")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"  {name:36} {value:6.2f}  ratio {base / value:.3f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--micro", action="store_true", help="the protocols alone, in process")
    a = p.parse_args()
    if a.micro:
        micro()
        return 0
    chains = 64
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        keyfob = next(t for t in harness.build_targets(run_dir, "full", 1000) if t.key == "keyfob")
        servers = []
        port = harness.FIRST_PORT
        for name, argv in variants(keyfob.argv).items():
            port = harness._free_port(port)
            target = dataclasses.replace(
                keyfob,
                key=name,
                argv=argv,
                env={**keyfob.env, "KEYFOB_STORE_URL": f"sqlite:///{run_dir / name}.db"},
            )
            servers.append(harness.Server(target, port, run_dir))
            port += 1
        cpu: dict[tuple[str, str], list[float]] = {}
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready()
                harness.register_users(server, chains)
            access = {
                s.target.key: [x for x, _ in harness.login_many(s, range(chains))] for s in servers
            }
            for rnd in range(a.rounds):
                order = servers[rnd % len(servers) :] + servers[: rnd % len(servers)]
                for server in order:
                    for mode in ("refresh", "protected"):
                        tokens = (
                            [r for _, r in harness.login_many(server, range(chains))]
                            if mode == "refresh"
                            else access[server.target.key]
                        )
                        result = harness.run_wrk(
                            server, mode, tokens, duration=a.duration,
                            connections=a.connections, scratch=run_dir,
                        )  # fmt: skip
                        assert result["non2xx"] == 0 and result["errors"] == 0, result
                        cpu.setdefault((server.target.key, mode), []).append(
                            result["cpu_us_per_request"]
                        )
                        rate, used = result["rate"], result["cpu_us_per_request"]
                        print(
                            f"round {rnd + 1} {server.target.key:12} {mode:9} "
                            f"{rate:8.0f} req/s {used:7.1f} µs CPU",
                            flush=True,
                        )
                time.sleep(0.5)
        finally:
            for server in servers:
                server.stop()
    print("\nmedian server CPU per request (µs), and httptools ÷ variant (>1: cheaper)")
    for mode in ("refresh", "protected"):
        base = statistics.median(cpu[("httptools", mode)])
        for server in servers:
            value = statistics.median(cpu[(server.target.key, mode)])
            print(f"  {mode:9} {server.target.key:12} {value:7.1f}  ratio {base / value:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
