"""Public test helpers: test your protected routes without a database or real time.

    from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

    clock = FrozenClock()
    manager = SessionManager(FAST_SETTINGS, MemoryStore(), clock=clock)
    ...
    clock.advance(11)   # past the default grace window

``FAST_SETTINGS`` uses argon2's cheapest profile and a fixed secret. Only for testing!
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.clock import Clock
from .settings import FAST_SETTINGS_OVERRIDES, Settings
from .store.memory import MemoryStore

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .store.protocol import Store

__all__ = ["FAST_SETTINGS", "Clock", "FrozenClock", "MemoryStore", "make_test_app"]

#: Settings for tests: memory store, cheapest argon2, a fixed secret. Only for testing!
FAST_SETTINGS = Settings(**FAST_SETTINGS_OVERRIDES)


class FrozenClock:
    """A clock that moves only when told to."""

    __slots__ = ("_now",)

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self._now = float(now)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward and return the new time."""
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        self._now = float(now)

    def __repr__(self) -> str:
        return f"FrozenClock({self._now!r})"


def make_test_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
) -> Starlette:
    """The keyfob server app on a fresh :class:`MemoryStore` with ``FAST_SETTINGS``.

    Drive it in-process, lifespan included::

        app = make_test_app(clock=FrozenClock())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
                ...

    Use an ``https://`` (or ``http://localhost``) base URL: the refresh cookie is
    ``Secure``, and keyfob refuses to send it over plain HTTP to other hosts.
    """
    # Imported here so that `import keyfob.testing` does not pull in Starlette.
    from .server.app import create_app

    return create_app(
        settings if settings is not None else FAST_SETTINGS,
        store if store is not None else MemoryStore(),
        clock,
    )
