"""Scraping keyfob's metrics: the ``/metrics`` route, a separate listener, several workers.

A :class:`MetricsExport` owns a process's :class:`~.metrics.Recorder`. Without a metrics
directory it exports that recorder alone. With one (``keyfob serve`` creates it and
hands it to its workers as ``KEYFOB_METRICS_DIR``; it removes it when it stops), each
process writes its snapshot to ``<dir>/<pid>.json`` every :data:`FLUSH_INTERVAL`
seconds and when it stops, atomically (write, then rename), and a scrape sums every
file with the answering process's live numbers. A scrape therefore sees other workers'
counts up to :data:`FLUSH_INTERVAL` late, well inside a Prometheus scrape interval;
nothing on the request path touches a file.

The live-session gauge is sampled by :func:`run_metrics_jobs` every
:data:`SESSION_SAMPLE_INTERVAL` seconds from ``count_sessions`` (which may scan a
table): a scrape never queries the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from ..manager import SessionManager
from .metrics import Recorder, Snapshot, merge_snapshots, metric_families

__all__ = [
    "FLUSH_INTERVAL",
    "SESSION_SAMPLE_INTERVAL",
    "MetricsExport",
    "parse_listen_address",
    "run_metrics_jobs",
    "start_listener",
]

logger = logging.getLogger("keyfob.server")

#: How often each process writes its numbers to the metrics directory (seconds).
FLUSH_INTERVAL: Final = 5.0
#: How often the live-session gauge is sampled (seconds).
SESSION_SAMPLE_INTERVAL: Final = 60.0


class MetricsExport:
    """A process's recorder, its file in ``directory`` (if any) and the exposition."""

    def __init__(self, recorder: Recorder | None, directory: str | Path | None) -> None:
        self.recorder = recorder
        self.directory = Path(directory) if directory else None
        self._own = f"{os.getpid()}.json"

    def flush(self) -> None:
        """Write this process's snapshot to its file (nothing without a directory)."""
        if self.directory is None or self.recorder is None:
            return
        target = self.directory / self._own
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.recorder.snapshot()), encoding="utf-8")
        temporary.replace(target)

    def snapshots(self) -> Iterator[Snapshot]:
        """This process's live numbers and every other process's latest file."""
        if self.recorder is not None:
            yield self.recorder.snapshot()
        if self.directory is None:
            return
        for path in sorted(self.directory.glob("*.json")):
            if self.recorder is not None and path.name == self._own:
                continue  # the live numbers above are newer
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # a file being replaced, or damaged
                logger.warning("skipping metrics file %s: %s", path.name, exc)

    def collect(self) -> Iterator[Any]:
        """The ``prometheus_client`` collector interface."""
        yield from metric_families(merge_snapshots(self.snapshots()))

    def registry(self) -> Any:
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of a scrape."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry()), CONTENT_TYPE_LATEST

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics`` on the server's own port."""
        body, content_type = self.exposition()
        return Response(body, 200, {"Cache-Control": "no-store"}, media_type=content_type)


async def run_metrics_jobs(export: MetricsExport, manager: SessionManager) -> None:
    """Sample the live sessions now and every minute; flush every few seconds. Runs
    until cancelled, then flushes once more."""
    recorder = export.recorder
    assert recorder is not None
    loop = asyncio.get_running_loop()
    next_sample = loop.time()
    try:
        while True:
            if loop.time() >= next_sample:
                next_sample = loop.time() + SESSION_SAMPLE_INTERVAL
                try:
                    recorder.set_live_sessions(await manager.store.count_sessions())
                except Exception as exc:  # the store is away: keep the last sample
                    logger.warning("cannot sample the live sessions: %s", exc)
            with contextlib.suppress(OSError):
                export.flush()
            await asyncio.sleep(FLUSH_INTERVAL)
    finally:
        with contextlib.suppress(OSError):
            export.flush()


def parse_listen_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9100``) of a ``KEYFOB_METRICS`` listener."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def start_listener(export: MetricsExport, address: str) -> Any:
    """Serve ``export`` at ``http://address/metrics`` on a thread; returns the server
    (call ``.shutdown()`` then ``.server_close()`` to stop it)."""
    from prometheus_client import start_http_server

    host, port = parse_listen_address(address)
    server, _thread = start_http_server(port, host, registry=export.registry())
    return server
