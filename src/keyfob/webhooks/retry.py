"""When a failed delivery is tried again: exponential backoff with jitter, bounded.

With the defaults the waits are about 5 s, 20 s, 80 s, 5 min, 21 min, 85 min, 5.7 h,
then 10 h, each moved by up to ±20 % so that deliveries that failed together (a receiver
that was down) do not come back together; ten attempts span a little over a day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart a delivery is attempted."""

    #: Attempts in all, the first one included; then the delivery is marked failed.
    max_attempts: int = 10
    #: The wait after the first failed attempt, in seconds.
    first_delay: float = 5.0
    #: Each further wait is this many times the one before ...
    factor: float = 4.0
    #: ... up to this many seconds (10 h).
    max_delay: float = 36_000.0
    #: Each wait is moved by a random fraction of itself, up to this much either way.
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.first_delay <= 0 or self.factor < 1 or self.max_delay < self.first_delay:
            raise ValueError("need first_delay > 0, factor >= 1, max_delay >= first_delay")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, failed_attempts: int, rng: random.Random) -> float | None:
        """The wait after ``failed_attempts`` failures, or None when they were the last."""
        if failed_attempts >= self.max_attempts:
            return None
        base = min(self.max_delay, self.first_delay * self.factor ** (failed_attempts - 1))
        return base * (1 + rng.uniform(-self.jitter, self.jitter))
