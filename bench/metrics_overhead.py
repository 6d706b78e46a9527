"""What the request observer (metrics, request log) costs per refresh, in nanoseconds.

Two measurements, in one process, interleaved and best-of-``--rounds``:

1. **micro**: the observer around a do-nothing ASGI app (answers 200 at once), called
   ``--calls`` times in a loop, for: no observer (main before this change), the
   observer with metrics off and the request log off (the default), metrics on, and
   metrics on with the request log on (records dropped by a handler-less logger at
   INFO: the cost of building them, not of writing them).
2. **refresh**: ``POST /auth/refresh`` through keyfob's real app (memory store, body
   transport, a chain of tokens: every call is a real rotation and a new ES256 access
   token) driven as ASGI calls without a network, with and without the observer.

The difference between variants is the instrumentation's cost; the refresh figures put
it in proportion to a refresh's own Python work (the HTTP server's share, about half of
a real request's CPU per docs/benchmarks.md, is not included, so the percentage here is
an upper bound).

    .venv/bin/python bench/metrics_overhead.py [--calls 200000] [--refreshes 500] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Scope

from keyfob.server import RateLimits, create_app
from keyfob.server.hot import KeyfobApp
from keyfob.server.metrics import Recorder
from keyfob.server.request_log import RequestObserver
from keyfob.settings import FAST_SETTINGS_OVERRIDES, Settings
from keyfob.testing import MemoryStore

_START: Message = {"type": "http.response.start", "status": 200, "headers": []}
_BODY: Message = {"type": "http.response.body", "body": b"{}"}


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    await send(_START)
    await send(_BODY)


async def _sink(message: Message) -> None:
    return None


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _scope(path: str, body: bytes = b"") -> Scope:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "https", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("testserver", 443),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip


async def _micro(calls: int, call: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        await call()
    return (time.perf_counter_ns() - started) / calls


async def micro(calls: int, rounds: int) -> dict[str, float]:
    scope = _scope("/auth/refresh")
    quiet = RequestObserver(None, frozenset({"/auth/refresh"}))
    metered = RequestObserver(Recorder(), frozenset({"/auth/refresh"}))
    request_logger = logging.getLogger("keyfob.request")
    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "no observer (before)": lambda: _nothing(scope, _no_body, _sink),
        "observer, metrics off, log off": lambda: quiet(scope, _no_body, _sink, _nothing),
        "observer, metrics on, log off": lambda: metered(scope, _no_body, _sink, _nothing),
    }
    best: dict[str, float] = {name: float("inf") for name in variants}
    best["observer, metrics on, log on"] = float("inf")
    for _ in range(rounds):
        for name, call in variants.items():
            best[name] = min(best[name], await _micro(calls, call))
        request_logger.setLevel(logging.INFO)
        request_logger.propagate = False  # built and dropped: no handler
        try:
            ns = await _micro(calls, lambda: metered(scope, _no_body, _sink, _nothing))
        finally:
            request_logger.setLevel(logging.NOTSET)
            request_logger.propagate = True
        best["observer, metrics on, log on"] = min(best["observer, metrics on, log on"], ns)
    return best


async def refresh(refreshes: int, rounds: int) -> dict[str, float]:
    many = "100000000/minute"
    limits = RateLimits(
        login_per_address=many, login_per_account=many, register_per_address=many,
        refresh_per_session=many,
    )  # fmt: skip
    settings = Settings.from_env({**FAST_SETTINGS_OVERRIDES, "metrics": "on", "grace": "0"})
    app = create_app(settings, MemoryStore(), rate_limits=limits)
    assert isinstance(app, KeyfobApp)
    observer = app.observer
    answers: list[Message] = []

    async def keep(message: Message) -> None:
        answers.append(message)

    async def call(path: str, data: dict[str, str]) -> dict[str, Any]:
        body = json.dumps(data).encode()
        answers.clear()

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        await app(_scope(path, body), receive, keep)
        status = answers[0]["status"]
        assert status in {200, 201}, (status, answers[1]["body"])
        return dict(json.loads(answers[1]["body"]))

    quiet = RequestObserver(None, observer.exact_paths) if observer is not None else None
    variants = (
        ("refresh, no observer (before)", None),
        ("refresh, metrics off", quiet),
        ("refresh, metrics on", observer),
    )
    best = {name: float("inf") for name, _ in variants}
    async with app.router.lifespan_context(app):
        await call("/auth/register", {"username": "bench", "password": "bench-password-1"})
        login = {"username": "bench", "password": "bench-password-1", "transport": "body"}
        token = (await call("/auth/login", login))["refresh_token"]
        for round_number in range(rounds):
            # Each round in another order: the first variant of a round runs colder.
            shift = round_number % len(variants)
            for name, on in variants[shift:] + variants[:shift]:
                app.observer = on
                started = time.perf_counter_ns()
                for _ in range(refreshes):
                    token = (await call("/auth/refresh", {"refresh_token": token}))["refresh_token"]
                best[name] = min(best[name], (time.perf_counter_ns() - started) / refreshes)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--refreshes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    results = asyncio.run(micro(args.calls, min(args.rounds, 5)))
    base = results["no observer (before)"]
    print("micro: observer around a do-nothing app, ns per call (best of rounds)")
    for name, ns in results.items():
        print(f"  {name:<34} {ns:8.0f} ns   +{ns - base:5.0f} ns")
    refresh_ns = asyncio.run(refresh(args.refreshes, args.rounds))
    before, _, after = refresh_ns.values()
    print("refresh through the real app (memory store, no network), ns per refresh")
    for name, ns in refresh_ns.items():
        print(f"  {name:<34} {ns:8.0f} ns")
    print(f"  overhead: {after - before:+.0f} ns = {100 * (after - before) / before:+.2f} %")


if __name__ == "__main__":
    main()
