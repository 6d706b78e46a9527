"""How long and how often one refresh is retried, and reading ``Retry-After``.

Retrying a refresh is safe only with the SAME refresh token: if the first attempt did
rotate on the server (its answer was lost, or the store finished after a 503), a retry
inside the server's grace window gets the identical successor (spec §3, §4), while a
retry with anything else would look like theft. The bounds below keep every retry of a
lost answer inside keyfob's default 10 s grace window where they can.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

__all__ = ["RetryPolicy"]

#: Statuses after which the same refresh is tried again: rate limited, and the gateway or
#: server errors that say "not now" (the request may or may not have been applied).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one refresh.

    ``attempts``: tries in all (the first one included). ``max_wait``: the longest single
    wait; a ``Retry-After`` longer than this ends the refresh at once with
    :class:`~keyfob.client.TokenEndpointUnavailable` rather than retrying early against
    the server's wish. ``backoff``: the first wait after a network error or an answer
    without ``Retry-After``, doubling for each later attempt (capped at ``max_wait``).

    The defaults wait at most 0.5 + 1 + 2 s after network errors, and at most
    3 x ``max_wait`` (30 s) when the server asks for it.
    """

    attempts: int = 4
    max_wait: float = 10.0
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.max_wait < 0 or self.backoff < 0:
            raise ValueError("max_wait and backoff must not be negative")

    def backoff_wait(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based) with no Retry-After."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.max_wait))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3): delay-seconds or
    an HTTP-date; ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(when.timestamp() - now, 0.0)
