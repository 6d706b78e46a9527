"""The tokens an auth holds, and the single flight that replaces them.

Every request reads the current tokens with their ``version``. A request that needs new
tokens (they are due, or the server answered 401) calls :meth:`TokenState.begin` with the
version it saw, and gets one of three answers, decided under one mutex:

* :class:`Fresh` — the tokens already moved past that version: use them, no refresh;
* :class:`Follow` — a refresh is in flight: wait for its outcome;
* :class:`Lead` — nobody is refreshing: this caller refreshes, then :meth:`commit` (or
  :meth:`fail`) settles the flight for everybody waiting.

The flight is a ``concurrent.futures.Future``, which threads wait on directly and asyncio
tasks await through ``asyncio.wrap_future``: one refresh for every thread, task and event
loop that shares the auth. It is marked running when it starts, so a waiter that is
cancelled cannot cancel the flight under the others.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass

from .errors import SessionEnded
from .tokens import TokenSet

__all__ = ["Follow", "Fresh", "Lead", "TokenState", "Versioned"]


@dataclass(frozen=True)
class Versioned:
    """Tokens, the version they are, and when to refresh them ahead of expiry."""

    tokens: TokenSet
    version: int
    refresh_at: float | None

    def due(self, now: float) -> bool:
        """True when this pair should be refreshed before its next use."""
        if self.tokens.access_token is None:
            return True
        return self.refresh_at is not None and now >= self.refresh_at

    def usable(self, now: float) -> bool:
        """True while the access token has not expired (as far as the client knows)."""
        expires_at = self.tokens.expires_at
        return self.tokens.access_token is not None and (expires_at is None or now < expires_at)


@dataclass(frozen=True)
class Fresh:
    current: Versioned


@dataclass(frozen=True)
class Follow:
    flight: Future[Versioned]


@dataclass(frozen=True)
class Lead:
    flight: Future[Versioned]
    refresh_token: str


class TokenState:
    """Thread-safe holder of the current :class:`Versioned` tokens and the flight."""

    def __init__(self, tokens: TokenSet, *, skew: float, now: float) -> None:
        self._mutex = threading.Lock()
        self._skew = skew
        self._current = self._versioned(tokens, 0, now)
        self._flight: Future[Versioned] | None = None
        self._ended: SessionEnded | None = None

    def current(self) -> Versioned:
        """The tokens to use now; raises :class:`SessionEnded` once the session ended."""
        with self._mutex:
            if self._ended is not None:
                raise _again(self._ended)
            return self._current

    def begin(self, seen_version: int) -> Fresh | Follow | Lead:
        with self._mutex:
            if self._ended is not None:
                raise _again(self._ended)
            if self._current.version != seen_version:
                return Fresh(self._current)
            if self._flight is not None:
                return Follow(self._flight)
            flight: Future[Versioned] = Future()
            flight.set_running_or_notify_cancel()
            self._flight = flight
            return Lead(flight, self._current.tokens.refresh_token)

    def commit(self, flight: Future[Versioned], tokens: TokenSet, *, now: float) -> Versioned:
        """Make ``tokens`` current (after the saver kept them) and settle the flight."""
        with self._mutex:
            self._current = self._versioned(tokens, self._current.version + 1, now)
            self._flight = None
            current = self._current
        flight.set_result(current)
        return current

    def fail(self, flight: Future[Versioned], error: BaseException) -> None:
        """Settle the flight with ``error``; a :class:`SessionEnded` ends the auth for good."""
        with self._mutex:
            if isinstance(error, SessionEnded):
                self._ended = error
            self._flight = None
        flight.set_exception(error)

    def _versioned(self, tokens: TokenSet, version: int, now: float) -> Versioned:
        refresh_at = None
        if tokens.expires_at is not None:
            # Refresh `skew` seconds early, but never earlier than half-way through the
            # token's life: a short-lived token must not be refreshed on every request.
            lifetime = max(tokens.expires_at - now, 0.0)
            refresh_at = tokens.expires_at - min(self._skew, lifetime / 2)
        return Versioned(tokens, version, refresh_at)


def _again(ended: SessionEnded) -> SessionEnded:
    # A new exception per raise: one shared instance would pile up every raiser's traceback.
    return SessionEnded(ended.status_code, ended.error, ended.description)
