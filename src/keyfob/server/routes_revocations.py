"""The revocation feed: resource servers long-poll the sessions revoked since a cursor.

``GET /oauth/revocations?since=<cursor>&wait=<seconds>`` with HTTP Basic client
authentication (a GET has no form, so ``client_secret_basic`` only), confidential clients
only: the list of revoked sessions is not for browsers or public clients.

* No ``since``: every revocation a resource server must still honour (the last
  ``access_ttl`` + leeway), at once.
* With ``since``: at once when a revocation is newer than the cursor; otherwise the
  request waits up to ``wait`` seconds (capped at :data:`MAX_WAIT`), woken by this
  process's own revocations and syncs (:meth:`SessionManager.revocations_recorded`) and
  re-reading the store every :data:`_STORE_POLL` seconds for those of other instances.

Each answer re-sends the revocations of the overlap window before the cursor (the
larger of the leeway and the store's ``max_write_delay``, as
:meth:`SessionManager.sync_revocations` does): a revocation stamped before the cursor but
committed after it is delivered late rather than never. Duplicates are harmless to the
client. The cursor is the server's clock when it read the store, opaque to clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..exceptions import InvalidClient, InvalidRequest
from ..oauth.client_auth import read_client_credentials
from ..oauth.errors import NO_STORE_HEADERS
from ..oauth.metadata import REVOCATION_FEED_PATH, TOKEN_PATH
from .context import ServerContext
from .responses import json_response

__all__ = ["MAX_WAIT", "RevocationRoutes"]

#: The longest a request waits: under the usual 30 s proxy and load-balancer timeouts.
MAX_WAIT: Final = 25.0
#: How often a waiting request re-reads the store for other instances' revocations (this
#: process's own wake it at once). One indexed range read per second per waiting feed.
_STORE_POLL: Final = 1.0
_MAX_CURSOR: Final = 40
_PARAMETERS: Final = frozenset({"since", "wait"})


class RevocationRoutes:
    def __init__(self, ctx: ServerContext) -> None:
        self.manager = ctx.manager
        issuer = ctx.settings.issuer.rstrip("/")
        self._audiences = (issuer + TOKEN_PATH, issuer + REVOCATION_FEED_PATH)

    def routes(self) -> list[Route]:
        return [Route(REVOCATION_FEED_PATH, self.feed, methods=["GET"])]

    async def feed(self, request: Request) -> Response:
        since, wait = _parameters(request)
        credentials = read_client_credentials(request.headers.getlist("authorization"), {})
        client = await self.manager.authenticate_client(credentials, audiences=self._audiences)
        if not client.confidential:
            # Which sessions ended, and when, is for the services that trust keyfob.
            raise InvalidClient("the revocation feed is for authenticated confidential clients")
        manager = self.manager
        settings = manager.settings
        overlap = max(settings.leeway, manager.store.max_write_delay)
        deadline = time.monotonic() + wait
        while True:
            now = manager.clock.now()
            horizon = now - settings.access_ttl - settings.leeway
            start = horizon if since is None else max(horizon, since - overlap)
            rows = await manager.store.revoked_since(start, now=now)
            remaining = deadline - time.monotonic()
            if since is None or remaining <= 0 or any(r.revoked_at > since for r in rows):
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, _STORE_POLL)):
                    await manager.revocations_recorded()
        body = {
            "revocations": [{"sid": r.sid, "revoked_at": r.revoked_at} for r in rows],
            "cursor": repr(now),
            "access_ttl": settings.access_ttl,
        }
        return json_response(body, 200, NO_STORE_HEADERS)


def _parameters(request: Request) -> tuple[float | None, float]:
    """``since`` (None for the first request) and ``wait``; :class:`InvalidRequest` for
    anything else, a repeated or unknown parameter included."""
    items = request.query_params.multi_items()
    names = [name for name, _ in items]
    for name in names:
        if name not in _PARAMETERS:
            raise InvalidRequest(f"unknown parameter {name!r}: use since and wait")
        if names.count(name) > 1:
            raise InvalidRequest(f"{name} is repeated")
    values = dict(items)
    since: float | None = None
    raw = values.get("since")
    if raw is not None:
        since = _number(raw, "since", _MAX_CURSOR)
    raw_wait = values.get("wait")
    wait = 0.0 if raw_wait is None else min(_number(raw_wait, "wait", 16), MAX_WAIT)
    return since, wait


def _number(raw: str, name: str, max_length: int) -> float:
    try:
        value = float(raw) if len(raw) <= max_length else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        what = "a cursor from a previous answer" if name == "since" else "seconds, 0 or more"
        raise InvalidRequest(f"{name} must be {what}")
    return value
