"""The resource server's end of keyfob's revocation feed (``GET /oauth/revocations``).

A daemon thread long-polls the auth server with the service's client credentials and
hands every revoked session to a callback (:meth:`RemoteVerifier.remember_revoked`), so a
revoked session is refused within about a second with no request to keyfob per API call.
A thread with a blocking client serves Flask, Django and asyncio frameworks alike, and
never blocks an event loop.

The feed is untrusted input, however authenticated: an answer that is not the expected
JSON is ignored as a whole, an entry that is malformed is skipped, and the loop keeps
running; errors back off exponentially up to a bound. Whether verification goes on while
the feed is down is the ``mode``: ``fail-open`` (the default) keeps verifying signatures
and says so in :meth:`RevocationFeedClient.health`; ``fail-closed`` makes the verifier
answer 503 once the feed has not succeeded for :attr:`FeedSettings.stale_after`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

__all__ = ["FeedHealth", "FeedSettings", "RevocationFeedClient"]

#: The longest sid the feed may hand over (keyfob's are 22 characters).
_MAX_SID = 128
#: The largest answer read: a day's revocations of a busy service fit many times over.
_MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class FeedSettings:
    """How a :class:`~keyfob.resource_server.RemoteVerifier` follows the feed.

    ``client_id``/``client_secret`` are a confidential client registered at keyfob;
    ``url`` is ``{issuer}/oauth/revocations`` by default.
    """

    client_id: str
    client_secret: str
    url: str | None = None
    mode: Literal["fail-open", "fail-closed"] = "fail-open"
    #: How long each long-poll may wait at the server (keyfob caps it at 25 s).
    wait: float = 20.0
    #: The first and the longest pause after a failed request.
    min_backoff: float = 0.5
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in ("fail-open", "fail-closed"):
            raise ValueError("mode must be 'fail-open' or 'fail-closed'")
        if not 0 <= self.wait <= 25 or not 0 < self.min_backoff <= self.max_backoff:
            raise ValueError("wait must be within 0-25 s and 0 < min_backoff <= max_backoff")

    @property
    def stale_after(self) -> float:
        """How long without a successful answer before the feed counts as down: a
        long-poll legitimately takes ``wait`` seconds, and one retry may follow."""
        return 2 * self.wait + 5.0


@dataclass(frozen=True)
class FeedHealth:
    mode: str
    #: The last request succeeded and the last success is within ``stale_after``.
    connected: bool
    #: Seconds since the last successful answer (None before the first).
    lag: float | None
    last_success_at: float | None
    last_error: str | None
    #: Entries skipped as malformed since the start.
    skipped_entries: int


class RevocationFeedClient:
    """The long-poll loop; started by :meth:`start`, stopped by :meth:`close`."""

    def __init__(
        self,
        settings: FeedSettings,
        url: str,
        on_revoked: Callable[[str, float], None],
        *,
        after_answer: Callable[[], None] | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.url = url
        self._on_revoked = on_revoked
        self._after_answer = after_answer
        self._http = httpx.Client(
            auth=httpx.BasicAuth(settings.client_id, settings.client_secret),
            timeout=settings.wait + timeout,
            follow_redirects=False,  # never send the credentials where a redirect says
            transport=transport,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cursor: str | None = None
        self._ok = False
        self._last_success: float | None = None  # monotonic
        self._last_success_wall: float | None = None
        self._last_error: str | None = None
        self._skipped = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="keyfob-revocation-feed", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop; closing the client ends a long-poll in flight at once."""
        self._stop.set()
        self._http.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # --- state ------------------------------------------------------------------------

    def stale(self) -> bool:
        """No successful answer within ``stale_after`` (or none yet)."""
        last = self._last_success
        return last is None or time.monotonic() - last > self.settings.stale_after

    def seconds_until_fresh(self) -> int:
        """A Retry-After for a fail-closed refusal: the next attempt is at most this far."""
        return max(1, math.ceil(self.settings.min_backoff))

    def health(self) -> FeedHealth:
        last = self._last_success
        lag = None if last is None else time.monotonic() - last
        return FeedHealth(
            mode=self.settings.mode,
            connected=self._ok and not self.stale(),
            lag=lag,
            last_success_at=self._last_success_wall,
            last_error=self._last_error,
            skipped_entries=self._skipped,
        )

    # --- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.settings.min_backoff
        while not self._stop.is_set():
            try:
                self._poll()
            except _FeedError as exc:
                self._failed(str(exc))
            except (httpx.HTTPError, RuntimeError) as exc:
                # close() shuts the client under a request in flight: httpx then raises
                # an HTTPError, or RuntimeError for a request not yet sent.
                if self._stop.is_set():
                    return
                self._failed(_describe(exc))
            except Exception as exc:  # the thread must outlive any one bad answer
                self._failed(f"the feed failed: {type(exc).__name__}")
            else:
                backoff = self.settings.min_backoff
                continue
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.settings.max_backoff)

    def _poll(self) -> None:
        params: dict[str, str] = {}
        if self._cursor is not None:
            params = {"since": self._cursor, "wait": f"{self.settings.wait:g}"}
        with self._http.stream("GET", self.url, params=params) as response:
            if response.status_code != 200:
                raise _FeedError(f"the feed answered {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _MAX_BODY:
                    raise _FeedError("the feed's answer is too large")
        entries, cursor = _parse(bytes(body))
        for entry in entries:
            sid = entry.get("sid") if isinstance(entry, dict) else None
            revoked_at = entry.get("revoked_at") if isinstance(entry, dict) else None
            if (
                isinstance(sid, str)
                and 0 < len(sid) <= _MAX_SID
                and isinstance(revoked_at, int | float)
                and not isinstance(revoked_at, bool)
                and math.isfinite(revoked_at)
            ):
                self._on_revoked(sid, float(revoked_at))
            else:
                self._skipped += 1
        if self._after_answer is not None:
            self._after_answer()
        self._cursor = cursor
        self._ok = True
        self._last_success = time.monotonic()
        self._last_success_wall = time.time()
        self._last_error = None

    def _failed(self, message: str) -> None:
        self._ok = False
        self._last_error = message


class _FeedError(Exception):
    """An answer the loop cannot use; it is ignored and retried after a pause."""


def _parse(body: bytes) -> tuple[list[object], str]:
    try:
        data = json.loads(body)
    except ValueError:
        raise _FeedError("the feed's answer is not JSON") from None
    if not isinstance(data, dict):
        raise _FeedError("the feed's answer is not a JSON object")
    revocations, cursor = data.get("revocations"), data.get("cursor")
    if not isinstance(revocations, list) or not isinstance(cursor, str) or not cursor:
        raise _FeedError("the feed's answer lacks revocations or a cursor")
    if len(cursor) > 64:
        raise _FeedError("the feed's cursor is too long")
    return revocations, cursor


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "the feed timed out"
    return f"the feed could not be reached: {type(exc).__name__}"
