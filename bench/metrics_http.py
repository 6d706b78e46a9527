"""The refresh route over HTTP with ``KEYFOB_METRICS`` off and on, interleaved.

Two keyfob servers (one uvicorn worker each, pinned to CPU 0, memory store, request log
off) run side by side; rounds alternate between them, so drift on a shared machine hits
both alike. Reports each one's median server CPU per refresh (bench/refresh_route.py's
load generator and accounting) and the difference.

    .venv/bin/python bench/metrics_http.py [--seconds 3] [--rounds 8] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from refresh_route import SECRET, measure, register, uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    base = {
        "KEYFOB_STORE_URL": "memory://",
        "KEYFOB_SECRET": SECRET,
        "KEYFOB_ISSUER": "http://127.0.0.1",
        "KEYFOB_PASSWORD_PROFILE": "cheapest",
    }
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    with (
        uvicorn("keyfob_app", {**base, "KEYFOB_METRICS": "off"}) as off,
        uvicorn("keyfob_app", {**base, "KEYFOB_METRICS": "on"}) as on,
    ):
        servers = {"off": off, "on": on}
        for port, _ in servers.values():
            asyncio.run(register(port))
        for round_number in range(args.rounds):
            order = ["off", "on"] if round_number % 2 == 0 else ["on", "off"]
            for name in order:
                port, pid = servers[name]
                result = asyncio.run(measure("refresh", port, pid, args.connections, args.seconds))
                assert result["errors"] == 0, result
                cpu[name].append(result["cpu_us"])
    off_us, on_us = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    print(f"refresh over HTTP, server CPU us per request, median of {args.rounds} rounds")
    print(f"  metrics off {off_us:7.1f}   {sorted(round(x) for x in cpu['off'])}")
    print(f"  metrics on  {on_us:7.1f}   {sorted(round(x) for x in cpu['on'])}")
    print(f"  difference  {on_us - off_us:+7.1f} us = {100 * (on_us - off_us) / off_us:+.1f} %")


if __name__ == "__main__":
    main()
