"""Rate limits of the auth routes (spec §7), on the ``limits`` library.

- **login**, per client address and per account (the submitted username, hashed, so an
  unknown name is limited exactly like a real one: no enumeration), with sliding-window
  counters; plus a per-account **lockout** after consecutive failures that doubles with
  each further failure (1 s, 2 s, 4 s … capped), cleared by a successful login;
- **register**, per client address (each attempt costs an argon2 hash);
- **refresh**, per session, generous: racing tabs and retries of one client must never be
  refused (40 parallel refreshes of one token pass).

The counters live in a ``limits`` storage: by default keyfob's own in-process
``async+keyfob-memory://`` (:mod:`keyfob.server.ratelimit_storage`), whose hits cost the
same with a hundred thousand live sessions as with ten, unlike ``limits``'
``async+memory://``. Sliding-window counters keep two integers per key; a moving window
would keep one timestamp per request.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from ..exceptions import ConfigurationError
from .errors import RateLimited
from .ratelimit_storage import CounterMemoryStorage

__all__ = ["CounterMemoryStorage", "RateLimiter", "RateLimits"]

# Consecutive failures are remembered this long after the first one.
_FAILURE_MEMORY = 86400
# 2**30 s is far beyond any sensible cap; bounding the exponent keeps the float finite.
_MAX_DOUBLINGS = 30


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits, in ``limits`` notation (``"10/minute;100/day"``)."""

    login_per_address: str = "30/minute;300/hour"
    login_per_account: str = "10/minute;100/day"
    register_per_address: str = "10/minute;100/day"
    refresh_per_session: str = "120/minute"
    #: Consecutive failed logins of one account before it is locked out.
    lockout_after: int = 5
    #: First lockout in seconds; each further failure doubles it.
    lockout_base: float = 1.0
    #: The longest lockout in seconds.
    lockout_max: float = 900.0
    #: A ``limits`` async storage URI (each process counts on its own with the default).
    storage_uri: str = "async+keyfob-memory://"


class RateLimiter:
    """Checks and counts the limits of :class:`RateLimits`; refusals raise ``RateLimited``."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        self.limits = limits = limits or RateLimits()
        try:
            self._login_address = parse_many(limits.login_per_address)
            self._login_account = parse_many(limits.login_per_account)
            self._register_address = parse_many(limits.register_per_address)
            self._refresh_session = parse_many(limits.refresh_per_session)
        except ValueError as exc:
            raise ConfigurationError(f"bad rate limit: {exc}") from None
        storage = storage_from_string(limits.storage_uri)
        if not isinstance(storage, Storage):
            raise ConfigurationError("the rate-limit storage must be an async+ storage")
        self._storage = storage
        self._window = SlidingWindowCounterRateLimiter(storage)

    async def check_login(self, address: str, username: str) -> None:
        """Count a login attempt; refuse it if the address or account is over its limit."""
        await self._hit(self._login_address, "login-address", address)
        account = _account_key(username)
        await self._hit(self._login_account, "login-account", account)
        lock = f"keyfob/lock/{account}"
        if await self._storage.get(lock) > 0:
            retry_after = await self._storage.get_expiry(lock) - time.time()
            raise RateLimited(
                "too many failed logins for this account; try again later",
                retry_after=max(1, math.ceil(retry_after)),
            )

    async def login_failed(self, username: str) -> None:
        """Record a failed login; lock the account out when failures pile up."""
        account = _account_key(username)
        failures = await self._storage.incr(f"keyfob/fails/{account}", _FAILURE_MEMORY)
        beyond = failures - self.limits.lockout_after
        if beyond >= 0:
            seconds = min(
                self.limits.lockout_max,
                self.limits.lockout_base * 2.0 ** min(beyond, _MAX_DOUBLINGS),
            )
            await self._storage.incr(f"keyfob/lock/{account}", max(1, math.ceil(seconds)))

    async def login_succeeded(self, username: str) -> None:
        await self._storage.clear(f"keyfob/fails/{_account_key(username)}")

    async def check_register(self, address: str) -> None:
        await self._hit(self._register_address, "register-address", address)

    async def check_refresh(self, sid: str) -> None:
        await self._hit(self._refresh_session, "refresh-session", sid)

    async def _hit(self, items: Sequence[RateLimitItem], namespace: str, key: str) -> None:
        for item in items:
            if not await self._window.hit(item, "keyfob", namespace, key):
                stats = await self._window.get_window_stats(item, "keyfob", namespace, key)
                raise RateLimited(
                    "too many requests; try again later",
                    retry_after=max(1, math.ceil(stats.reset_time - time.time())),
                )


def _account_key(username: str) -> str:
    # Hashed: bounded key length, and no usernames in a shared rate-limit store.
    return hashlib.sha256(username.strip().casefold().encode("utf-8", "replace")).hexdigest()[:32]
