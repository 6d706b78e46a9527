"""What an operator sees of one app: health routes, metrics, request and security logs.

:func:`create_app` builds one :class:`Operations` and calls it in three places: its
routes join the app's, :meth:`install` puts the request observer on the app and the
security-event listener on the manager, and the lifespan calls :meth:`start` once the
manager started and :meth:`stop` before it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.routing import BaseRoute, Route

from .context import ServerContext
from .health import HealthRoutes
from .hot import KeyfobApp
from .metrics import Recorder
from .metrics_export import MetricsExport, run_metrics_jobs, start_listener
from .request_log import RequestObserver
from .security_log import SecurityEventObserver

__all__ = ["Operations"]


class Operations:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.health = HealthRoutes(ctx)
        mode = ctx.settings.metrics
        self.recorder = Recorder() if mode != "off" else None
        self.export = (
            MetricsExport(self.recorder, ctx.settings.metrics_dir) if self.recorder else None
        )
        self._jobs: asyncio.Task[None] | None = None
        self._listener: Any = None

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = list(self.health.routes())
        if self.export is not None and self.ctx.settings.metrics == "on":
            routes.append(Route("/metrics", self.export.endpoint, methods=["GET"]))
        return routes

    def install(self, app: KeyfobApp, exact_paths: frozenset[str]) -> None:
        app.observer = RequestObserver(self.recorder, exact_paths)
        self.ctx.manager.event_log.add_listener(SecurityEventObserver(self.recorder))

    async def start(self) -> None:
        self.health.started = True
        if self.export is None:
            return
        self._jobs = asyncio.get_running_loop().create_task(
            run_metrics_jobs(self.export, self.ctx.manager), name="keyfob-metrics"
        )
        address = self.ctx.settings.metrics
        # With a metrics directory the process that owns it (keyfob serve's supervisor)
        # listens for every worker; without one this process is the only one.
        if address != "on" and not self.ctx.settings.metrics_dir:
            self._listener = start_listener(self.export, address)

    async def stop(self) -> None:
        self.health.started = False
        listener, self._listener = self._listener, None
        if listener is not None:
            await asyncio.to_thread(listener.shutdown)
            listener.server_close()
        jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await jobs
