"""Rate limits of the auth routes (spec §7), on the ``limits`` library.

- **login**, per client address and per account (the submitted username, hashed, so an
  unknown name is limited exactly like a real one: no enumeration), with sliding-window
  counters; plus a per-account **lockout** after consecutive failures that doubles with
  each further failure (1 s, 2 s, 4 s … capped), cleared by a successful login;
- **register**, per client address (each attempt costs an argon2 hash);
- **refresh**, per session, generous: racing tabs and retries of one client must never be
  refused (40 parallel refreshes of one token pass). A fixed window: one counter
  increment per refresh, the cheapest strategy ``limits`` has, on the busiest route; a
  burst that straddles two windows can reach twice the budget, which bounds a stolen
  session's refreshes all the same.

The counters live in a ``limits`` storage: by default keyfob's own in-process
``async+keyfob-memory://`` (:mod:`keyfob.server.ratelimit_storage`), whose hits cost the
same with a hundred thousand live sessions as with ten, unlike ``limits``'
``async+memory://``. Sliding-window counters keep two integers per key; a moving window
would keep one timestamp per request.

With ``KEYFOB_REDIS_URL`` the counters are shared by every instance (``async+redis://``,
through redis-py with short timeouts and no retries), wrapped in a
:class:`~keyfob.server.ratelimit_storage.FallbackStorage`: while Redis is unreachable
each process counts on its own again rather than failing open.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import (
    RateLimiter as WindowStrategy,
)
from limits.errors import StorageError
from limits.storage import storage_from_string

from ..exceptions import ConfigurationError, RateLimited
from .ratelimit_storage import CounterMemoryStorage, FallbackStorage

__all__ = [
    "DEFAULT_STORAGE_URI",
    "CounterMemoryStorage",
    "FallbackStorage",
    "RateLimiter",
    "RateLimits",
    "redis_storage_uri",
]

#: Each process counts on its own.
DEFAULT_STORAGE_URI: Final = "async+keyfob-memory://"
#: The schemes of KEYFOB_REDIS_URL, and of the ``limits`` URIs they become.
_REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})
_LIMITS_REDIS_SCHEMES: Final = frozenset({"async+redis", "async+rediss", "async+redis+unix"})

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
    #: A ``limits`` async storage URI (each process counts on its own with the default;
    #: ``create_app`` uses ``async+redis://…`` when ``KEYFOB_REDIS_URL`` is set).
    storage_uri: str = DEFAULT_STORAGE_URI


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
        self._storage, self._closer = _open_storage(limits.storage_uri)
        self._window: WindowStrategy = SlidingWindowCounterRateLimiter(self._storage)
        self._fixed_window: WindowStrategy = FixedWindowRateLimiter(self._storage)

    @property
    def storage(self) -> Storage:
        """The ``limits`` storage the counters live in."""
        return self._storage

    async def aclose(self) -> None:
        """Close the connections of a shared storage (nothing to do in process)."""
        closer, self._closer = self._closer, None
        if closer is not None:
            await closer()

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
        await self._hit(self._refresh_session, "refresh-session", sid, self._fixed_window)

    async def _hit(
        self,
        items: Sequence[RateLimitItem],
        namespace: str,
        key: str,
        window: WindowStrategy | None = None,
    ) -> None:
        window = window or self._window
        for item in items:
            if not await window.hit(item, "keyfob", namespace, key):
                stats = await window.get_window_stats(item, "keyfob", namespace, key)
                raise RateLimited(
                    "too many requests; try again later",
                    retry_after=max(1, math.ceil(stats.reset_time - time.time())),
                )


def redis_storage_uri(redis_url: str) -> str:
    """The ``limits`` URI of a Redis URL: ``redis://h:6379/0`` → ``async+redis://h:6379/0``."""
    scheme = redis_url.partition("://")[0]
    if scheme not in _REDIS_SCHEMES:
        raise ConfigurationError(
            f"KEYFOB_REDIS_URL must be a redis://, rediss:// or unix:// URL, not {scheme!r}"
        )
    return f"async+{'redis+unix' if scheme == 'unix' else scheme}://{redis_url.partition('://')[2]}"


def _open_storage(uri: str) -> tuple[Storage, Callable[[], Awaitable[None]] | None]:
    """The storage for ``uri``, and how to close it. A shared (Redis) storage is wrapped
    in :class:`FallbackStorage`: each process counts on its own while Redis is away."""
    scheme = uri.partition("://")[0]
    if scheme not in _LIMITS_REDIS_SCHEMES:
        storage = storage_from_string(uri)
        if not isinstance(storage, Storage):
            raise ConfigurationError("the rate-limit storage must be an async+ storage")
        return storage, None
    try:
        from redis.exceptions import RedisError

        from .fanout import redis_client
    except ImportError as exc:
        raise ConfigurationError(
            f"a Redis rate-limit storage needs the 'redis' extra: pip install 'keyfob[redis]' "
            f"({exc})"
        ) from None
    plain = uri.removeprefix("async+").replace("redis+unix://", "unix://", 1)
    client = redis_client(plain)
    # Our own client (short timeouts, no retries) under limits' Redis storage; limits'
    # own options are typed as scalars, hence the dict.
    options: dict[str, Any] = {"connection_pool": client.connection_pool}
    shared = storage_from_string(uri, implementation="redispy", wrap_exceptions=True, **options)
    if not isinstance(shared, Storage):  # pragma: no cover - an async+ scheme
        raise ConfigurationError("the rate-limit storage must be an async+ storage")
    fallback = FallbackStorage(shared, errors=(StorageError, RedisError))
    return fallback, client.aclose


def _account_key(username: str) -> str:
    # Hashed: bounded key length, and no usernames in a shared rate-limit store.
    return hashlib.sha256(username.strip().casefold().encode("utf-8", "replace")).hexdigest()[:32]
