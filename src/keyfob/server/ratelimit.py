"""Rate limits and login throttling of the auth routes (spec §7), on the ``limits`` library.

**Login: throttle the attacker, never lock the owner out.** A per-account lockout (the
account refuses everyone after N failures) is a weapon: anyone who knows a username can
keep its owner out for as long as they like (OWASP Authentication Cheat Sheet, "Account
Lockout"; OWASP "Slow Down Online Guessing Attacks with Device Cookies"). So failures
are counted where the attacker is, and only the attacker waits:

- **per account and client** (the address, or the browser's known-device cookie when
  it has one for this account): after ``throttle_after`` consecutive failures each
  further failure makes *that pair* wait 1 s, 2 s, 4 s … up to ``throttle_max``
  (429 with ``Retry-After``, even for the right password); a success clears it. The
  owner, from any other address or from a browser that signed in before, is unaffected;
- **per client address**, every attempt, whatever the account (``login_per_address``):
  one address spraying many accounts (credential stuffing) is slowed down;
- **per account across all addresses**, failures only (``login_failures_per_account``),
  high enough (100 an hour by default) that it takes a distributed attack to reach it.
  While it is exhausted, a client without a known-device cookie for the account gets
  429; a browser that signed in to the account before is exempt
  (:mod:`.known_devices`), so even a botnet cannot lock the owner out of their own
  browser, and the botnet's guesses are capped all the same.

The account is the submitted username's PRECIS key (:mod:`keyfob.core.usernames`, so
full-width ``ALICE`` and ``alice`` share one budget), hashed: bounded key length, no usernames in
a shared store, and an unknown name is limited exactly like a real one (no enumeration).
When a throttle starts, :meth:`RateLimiter.login_failed` says so and the route records
a ``login_throttled`` security event (one per throttle, not one per refused request).

**Register** is limited per client address (each attempt costs an argon2 hash).
**Refresh** is limited per session, generously: racing tabs and retries of one client
must never be refused (40 parallel refreshes of one token pass). A fixed window: one
counter increment per refresh, the cheapest strategy ``limits`` has, on the busiest
route; a burst that straddles two windows can reach twice the budget, which bounds a
stolen session's refreshes all the same.

The limits are settings (``KEYFOB_RATE_LIMIT_*``, :meth:`RateLimits.from_settings`). The
counters live in a ``limits`` storage: by default keyfob's own in-process
``async+keyfob-memory://`` (:mod:`keyfob.server.ratelimit_storage`), whose hits cost the
same with a hundred thousand live sessions as with ten, unlike ``limits``'
``async+memory://``. With ``KEYFOB_REDIS_URL`` the counters are shared by every instance
(``async+redis://``, through redis-py with short timeouts and no retries), wrapped in a
:class:`~keyfob.server.ratelimit_storage.FallbackStorage`: while Redis is unreachable
each process counts on its own again rather than failing open. Every storage call is
awaited (never a blocking call on the event loop).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

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

from ..core.usernames import lookup_names
from ..exceptions import ConfigurationError, RateLimited
from ..settings import Settings
from .ratelimit_storage import CounterMemoryStorage, FallbackStorage

__all__ = [
    "DEFAULT_STORAGE_URI",
    "CounterMemoryStorage",
    "FallbackStorage",
    "RateLimiter",
    "RateLimits",
    "Throttling",
    "redis_storage_uri",
]

#: Each process counts on its own.
DEFAULT_STORAGE_URI: Final = "async+keyfob-memory://"
#: The schemes of KEYFOB_REDIS_URL, and of the ``limits`` URIs they become.
_REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})
_LIMITS_REDIS_SCHEMES: Final = frozenset({"async+redis", "async+rediss", "async+redis+unix"})

# Consecutive failures of one account and client are remembered this long after the first.
_FAILURE_MEMORY = 86400
# 2**30 s is far beyond any sensible cap; bounding the exponent keeps the float finite.
_MAX_DOUBLINGS = 30
# The settings' defaults, so that RateLimits() and Settings() agree (described once).
_DEFAULTS: Final = Settings()


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits, in ``limits`` notation (``"10/minute;100/day"``); see the module."""

    #: Login attempts per client address, any account.
    login_per_address: str = _DEFAULTS.rate_limit_login
    #: Failed logins per account from all addresses (known devices are exempt).
    login_failures_per_account: str = _DEFAULTS.rate_limit_login_account
    register_per_address: str = _DEFAULTS.rate_limit_register
    refresh_per_session: str = _DEFAULTS.rate_limit_refresh
    #: Consecutive failures of one account from one client before it waits.
    throttle_after: int = _DEFAULTS.login_throttle_after
    #: The first wait in seconds; each further failure doubles it.
    throttle_base: float = 1.0
    #: The longest wait in seconds.
    throttle_max: float = _DEFAULTS.login_throttle_max
    #: A ``limits`` async storage URI (each process counts on its own with the default;
    #: ``create_app`` uses ``async+redis://…`` when ``KEYFOB_REDIS_URL`` is set).
    storage_uri: str = DEFAULT_STORAGE_URI

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        """The limits the ``KEYFOB_RATE_LIMIT_*`` and ``KEYFOB_LOGIN_THROTTLE_*`` say."""
        return cls(
            login_per_address=settings.rate_limit_login,
            login_failures_per_account=settings.rate_limit_login_account,
            register_per_address=settings.rate_limit_register,
            refresh_per_session=settings.rate_limit_refresh,
            throttle_after=settings.login_throttle_after,
            throttle_max=settings.login_throttle_max,
        )


@dataclass(frozen=True, slots=True)
class Throttling:
    """A throttle that a failed login has just started: worth a security event."""

    #: ``pair``: this account from this client; ``account``: the account from everywhere
    #: but its known devices.
    scope: Literal["pair", "account"]
    #: Seconds until the next attempt is allowed.
    retry_after: int

    @property
    def detail(self) -> str:
        """The security event's detail."""
        if self.scope == "pair":
            return f"too many failed logins from this client: it waits {self.retry_after} s"
        return (
            "too many failed logins from all addresses: unknown clients wait "
            f"{self.retry_after} s (known devices are exempt)"
        )


class RateLimiter:
    """Checks and counts the limits of :class:`RateLimits`; refusals raise ``RateLimited``.

    ``device`` in the login calls is the id of a valid known-device cookie *for the
    submitted account* (:mod:`.known_devices`), or ``None``.
    """

    def __init__(self, limits: RateLimits | None = None) -> None:
        self.limits = limits = limits or RateLimits()
        try:
            self._login_address = parse_many(limits.login_per_address)
            self._login_account = parse_many(limits.login_failures_per_account)
            self._register_address = parse_many(limits.register_per_address)
            self._refresh_session = parse_many(limits.refresh_per_session)
        except ValueError as exc:
            raise ConfigurationError(f"bad rate limit: {exc}") from None
        if limits.throttle_after < 1 or limits.throttle_base <= 0 or limits.throttle_max < 1:
            raise ConfigurationError("throttle_after, throttle_base and throttle_max must be >= 1")
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

    async def check_login(self, address: str, username: str, *, device: str | None = None) -> None:
        """Count a login attempt; refuse it while its address, its (account, client)
        pair or, for an unknown client, its account is throttled."""
        await self._hit(self._login_address, "login-address", address)
        account = account_key(username)
        lock = f"keyfob/lock/{_pair_key(account, address, device)}"
        if await self._storage.get(lock) > 0:
            raise RateLimited(
                "too many failed logins for this account from here; try again later",
                retry_after=_seconds_until(await self._storage.get_expiry(lock)),
            )
        if device is None:
            for item in self._login_account:
                if not await self._window.test(item, "keyfob", "login-account", account):
                    raise RateLimited(
                        "too many failed logins for this account; try again later",
                        retry_after=await self._reset_after(item, "login-account", account),
                    )

    async def login_failed(
        self, address: str, username: str, *, device: str | None = None
    ) -> Throttling | None:
        """Count a failed login; the throttle it starts, if it starts one."""
        account = account_key(username)
        pair = _pair_key(account, address, device)
        failures = await self._storage.incr(f"keyfob/fails/{pair}", _FAILURE_MEMORY)
        started: Throttling | None = None
        beyond = failures - self.limits.throttle_after
        if beyond >= 0:
            seconds = max(
                1,
                math.ceil(
                    min(
                        self.limits.throttle_max,
                        self.limits.throttle_base * 2.0 ** min(beyond, _MAX_DOUBLINGS),
                    )
                ),
            )
            await self._storage.incr(f"keyfob/lock/{pair}", seconds)
            if beyond == 0:
                started = Throttling("pair", seconds)
        # Failures only: the owner's successful logins never spend the account's budget.
        accepted = [
            await self._window.hit(item, "keyfob", "login-account", account)
            for item in self._login_account
        ]
        if all(accepted):
            for item in self._login_account:
                if not await self._window.test(item, "keyfob", "login-account", account):
                    # This failure used up the account's budget.
                    retry_after = await self._reset_after(item, "login-account", account)
                    return Throttling("account", retry_after)
        return started

    async def login_succeeded(
        self, address: str, username: str, *, device: str | None = None
    ) -> None:
        """Forget the pair's consecutive failures (not the account's: those are someone
        else's guesses, and the owner signing in must not refill the attacker's budget)."""
        pair = _pair_key(account_key(username), address, device)
        await self._storage.clear(f"keyfob/fails/{pair}")

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
                    retry_after=_seconds_until(stats.reset_time),
                )

    async def _reset_after(self, item: RateLimitItem, namespace: str, key: str) -> int:
        stats = await self._window.get_window_stats(item, "keyfob", namespace, key)
        return _seconds_until(stats.reset_time)


def account_key(username: str) -> str:
    """The rate-limit key of a submitted username: its PRECIS key, hashed."""
    names = lookup_names(username) if isinstance(username, str) else ()
    name = names[0] if names else str(username).strip()
    # Hashed: bounded key length, and no usernames in a shared rate-limit store.
    return hashlib.sha256(name.casefold().encode("utf-8", "replace")).hexdigest()[:32]


def _pair_key(account: str, address: str, device: str | None) -> str:
    # A known device is its own client wherever it connects from (OWASP device cookies:
    # trusted clients are throttled one by one); others are known by their address.
    client = f"d:{device}" if device is not None else f"a:{address}"
    return hashlib.sha256(f"{account}\0{client}".encode("utf-8", "replace")).hexdigest()[:32]


def _seconds_until(at: float) -> int:
    return max(1, math.ceil(at - time.time()))


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
