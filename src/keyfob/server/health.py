"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve).

Both answer ``{"status": "ok"|"unavailable", "checks": {...}}`` with 200 or 503 and
``Cache-Control: no-store``. They are not rate limited, not logged, not counted in the
metrics (:data:`~.request_log.QUIET_PATHS`) and record no security event: a load
balancer polls them every few seconds.

``/healthz`` does no I/O at all. ``/readyz`` checks, each with a bounded wait:

- ``store``: one primary-key lookup of a session id that cannot exist (the cheapest
  query every store has; ``count_sessions`` would scan a table);
- ``signing_keys``: a key that signs now is loaded;
- ``migrations``: the store was opened by this process's lifespan, which applies
  every migration this keyfob knows (a database migrated by a newer keyfob fails
  that start with ``StoreIntegrityError``, so a running process is current);
- ``redis`` (only with ``KEYFOB_REDIS_URL``): a ``PING`` through the rate-limit
  storage. Without Redis keyfob still serves (each process counts and learns
  revocations on its own), so a failure reports ``degraded`` and stays 200.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..oauth.errors import NO_STORE_HEADERS
from .context import ServerContext
from .responses import json_response

__all__ = ["PROBE_TIMEOUT", "HealthRoutes"]

#: The longest a readiness check waits for the store or Redis, in seconds.
PROBE_TIMEOUT: Final = 2.0
# A sid no session can have: session ids are URL-safe base64 of random bytes.
_PROBE_SID: Final = "readyz-probe!"


class HealthRoutes:
    """The two routes, bound to one app's context."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        #: Set by the lifespan once the manager started (store open and migrated).
        self.started = False

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok", "checks": {}}, 200, NO_STORE_HEADERS)

    async def readyz(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        checks["migrations"] = "ok" if self.started else "unavailable"
        checks["store"] = await self._store_check() if self.started else "unavailable"
        checks["signing_keys"] = self._keys_check() if self.started else "unavailable"
        if self.ctx.settings.redis_url:
            checks["redis"] = await self._redis_check()
        ready = all(v in {"ok", "degraded"} for v in checks.values())
        return json_response(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            200 if ready else 503,
            NO_STORE_HEADERS if ready else {**NO_STORE_HEADERS, "Retry-After": "5"},
        )

    async def _store_check(self) -> str:
        try:
            await asyncio.wait_for(self.ctx.manager.store.get_session(_PROBE_SID), PROBE_TIMEOUT)
        except Exception:  # any failure, a timeout included, means not ready
            return "unavailable"
        return "ok"

    def _keys_check(self) -> str:
        manager = self.ctx.manager
        now = manager.clock.now()
        records = manager.keys()
        return "ok" if any(r.can_sign(now) for r in records) else "unavailable"

    async def _redis_check(self) -> str:
        try:
            reachable = await asyncio.wait_for(self.ctx.limiter.storage.check(), PROBE_TIMEOUT)
        except Exception:
            reachable = False
        return "ok" if reachable else "degraded"
