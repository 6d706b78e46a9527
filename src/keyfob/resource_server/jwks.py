"""The issuer's JWKS, cached the way HTTP says, for services that are not the auth server.

:class:`KeyCache` holds the last good key set and decides, from the clock alone, when to
fetch again; it does no I/O, so the sync and async fetchers share every rule:

- **Freshness from the answer's headers.** ``Cache-Control: max-age`` (clamped to
  ``[min_ttl, max_ttl]``: a ``max-age=0`` must not mean a fetch per request, a year must
  not pin a withdrawn key), else ``default_ttl``. ``no-store``/``no-cache`` count as
  ``min_ttl``. An ``ETag`` is sent back as ``If-None-Match``; a ``304`` extends freshness.
- **An unknown ``kid`` refetches, at most once per ``unknown_kid_interval``.** A new key is
  published before it signs (keyfob waits ``KEYFOB_KEY_PUBLISH_DELAY``), so this is rare for
  real tokens; the interval bounds what a stream of forged ``kid`` values can cost.
- **Failures keep the last good keys.** A timeout, a 5xx, an oversized or malformed
  document, or keys that fail keyfob's checks leave the cached set in use and are
  retried after ``retry_interval``, doubling up to ``max_retry_interval``, never on every
  request. :meth:`KeyCache.health` says what happened last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.jwk import PublicKeySet
from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from .feed import FeedHealth

__all__ = ["JWKSFetchError", "JWKSPolicy", "KeyCache", "KeyCacheHealth"]

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


class JWKSFetchError(Exception):
    """One fetch of the JWKS failed; the reason is kept for :meth:`KeyCache.health`."""


@dataclass(frozen=True, slots=True)
class JWKSPolicy:
    """How often the JWKS is fetched, and how much of it is accepted."""

    #: Without a usable ``Cache-Control: max-age``: keyfob's own JWKS says 300 s.
    default_ttl: float = 300.0
    min_ttl: float = 30.0
    max_ttl: float = 86_400.0
    #: At most one refetch per this many seconds because of an unknown ``kid``.
    unknown_kid_interval: float = 5.0
    #: After a failed fetch, wait this long before the next, doubling each time.
    retry_interval: float = 2.0
    max_retry_interval: float = 60.0
    #: Seconds for the whole fetch: connecting, sending, reading.
    timeout: float = 3.0
    #: A JWKS is a few keys; anything larger is refused before it is parsed.
    max_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ConfigurationError("JWKS policy: need 0 < min_ttl <= default_ttl <= max_ttl")
        if self.timeout <= 0 or self.max_bytes <= 0:
            raise ConfigurationError("JWKS policy: timeout and max_bytes must be positive")
        if self.retry_interval <= 0 or self.max_retry_interval < self.retry_interval:
            raise ConfigurationError("JWKS policy: need 0 < retry_interval <= max_retry_interval")


@dataclass(frozen=True, slots=True)
class KeyCacheHealth:
    """What a health endpoint of the resource server can report."""

    keys_loaded: int
    #: The cached keys are within their HTTP freshness lifetime.
    fresh: bool
    last_success_at: float | None
    last_error: str | None
    last_error_at: float | None
    #: The revocation feed's state, when the verifier follows one.
    feed: FeedHealth | None = None


class KeyCache:
    """The last good key set and when to fetch the next one. No I/O, not thread-safe on
    its own: the fetchers serialise the calls that change it."""

    def __init__(self, policy: JWKSPolicy | None = None) -> None:
        self.policy = policy or JWKSPolicy()
        self.keys: PublicKeySet | None = None
        self.etag: str | None = None
        self._fresh_until = float("-inf")
        self._next_attempt = float("-inf")
        self._next_unknown_kid = float("-inf")
        self._failures = 0
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None

    # --- decisions --------------------------------------------------------------------

    def should_fetch(self, now: float) -> bool:
        """Fetch before verifying: nothing loaded yet, or the keys are stale, and no
        failed attempt asks to wait."""
        return now >= self._next_attempt and (self.keys is None or now >= self._fresh_until)

    def should_fetch_for_unknown_kid(self, now: float) -> bool:
        """A token named a ``kid`` we do not have: look again, at most once per interval."""
        return now >= self._next_unknown_kid and now >= self._next_attempt

    def request_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/jwk-set+json, application/json"}
        if self.etag is not None and self.keys is not None:
            headers["If-None-Match"] = self.etag
        return headers

    # --- outcomes ---------------------------------------------------------------------

    def attempting(self, now: float, *, unknown_kid: bool) -> None:
        """Called before a fetch: an unknown-``kid`` fetch uses up its interval even if it
        fails, so that forged kids cannot turn failures into a fetch per request."""
        if unknown_kid:
            self._next_unknown_kid = now + self.policy.unknown_kid_interval

    def answered(self, now: float, status: int, headers: dict[str, str], body: bytes) -> bool:
        """Take an HTTP answer; True when the key set changed. Raises
        :class:`JWKSFetchError` (after recording it) when the answer is unusable."""
        if status == 304 and self.keys is not None:
            self._succeeded(now, headers)
            return False
        if status != 200:
            raise self._failed(now, f"the JWKS answered HTTP {status}")
        if len(body) > self.policy.max_bytes:
            raise self._failed(now, f"the JWKS is larger than {self.policy.max_bytes} bytes")
        try:
            document: Any = json.loads(body)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            keys = PublicKeySet.from_jwks(document)
        except (ValueError, TypeError, KeyError, ConfigurationError) as exc:
            # Whatever an untrusted document does to the parser is a failed fetch.
            raise self._failed(now, f"the JWKS is unusable: {exc}") from exc
        if len(keys) == 0:
            raise self._failed(now, "the JWKS holds no key keyfob can verify with")
        self.keys = keys
        self.etag = headers.get("etag")
        self._succeeded(now, headers)
        return True

    def unreachable(self, now: float, reason: str) -> JWKSFetchError:
        """The fetch itself failed (connection, timeout, a body too large to read)."""
        return self._failed(now, reason)

    def health(self, now: float) -> KeyCacheHealth:
        return KeyCacheHealth(
            keys_loaded=len(self.keys) if self.keys is not None else 0,
            fresh=self.keys is not None and now < self._fresh_until,
            last_success_at=self._last_success,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    def retry_after(self, now: float) -> int:
        """Seconds until the next attempt, for a 503's ``Retry-After``."""
        return max(1, int(self._next_attempt - now + 0.999))

    def _succeeded(self, now: float, headers: dict[str, str]) -> None:
        self._fresh_until = now + self._lifetime(headers.get("cache-control", ""))
        self._next_attempt = float("-inf")
        self._failures = 0
        self._last_success = now

    def _failed(self, now: float, reason: str) -> JWKSFetchError:
        policy = self.policy
        backoff = policy.retry_interval * 2.0 ** min(self._failures, 16)
        wait = min(policy.max_retry_interval, backoff)
        self._failures += 1
        self._next_attempt = now + wait
        self._last_error = reason
        self._last_error_at = now
        return JWKSFetchError(reason)

    def _lifetime(self, cache_control: str) -> float:
        policy = self.policy
        if _NO_CACHE.search(cache_control):
            return policy.min_ttl
        match = _MAX_AGE.search(cache_control)
        if match is None:
            return policy.default_ttl
        return min(policy.max_ttl, max(policy.min_ttl, float(match.group(1))))
