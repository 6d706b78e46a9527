"""The verified-token cache: bounded, keyed by exact text, expiry enforced on every hit."""

from __future__ import annotations

import pytest

from keyfob.core.token_cache import VerifiedTokenCache


def test_hit_within_the_window() -> None:
    """A cached token is returned while now is inside its validity window."""
    cache: VerifiedTokenCache[str] = VerifiedTokenCache(10)
    cache.put("t", "principal", valid_from=100, valid_until=200)
    assert cache.get("t", 100) == "principal"
    assert cache.get("t", 199.9) == "principal"


@pytest.mark.parametrize("now", [99.9, 200, 10_000])
def test_miss_outside_the_window_drops_the_entry(now: float) -> None:
    """Outside the window (expired or not yet valid) is a miss, and the entry goes."""
    cache: VerifiedTokenCache[str] = VerifiedTokenCache(10)
    cache.put("t", "principal", valid_from=100, valid_until=200)
    assert cache.get("t", now) is None
    assert len(cache) == 0


def test_only_the_exact_text_hits() -> None:
    """A token that differs in any character is a miss."""
    cache: VerifiedTokenCache[str] = VerifiedTokenCache(10)
    cache.put("abc", "p", valid_from=0, valid_until=10)
    assert cache.get("abd", 1) is None
    assert cache.get("abc ", 1) is None


def test_bounded_oldest_first() -> None:
    """At capacity, the entry put first is evicted first."""
    cache: VerifiedTokenCache[int] = VerifiedTokenCache(3)
    for i in range(5):
        cache.put(f"t{i}", i, valid_from=0, valid_until=10)
    assert len(cache) == 3
    assert cache.get("t0", 1) is None
    assert cache.get("t1", 1) is None
    assert cache.get("t4", 1) == 4


def test_zero_size_disables() -> None:
    """A cache of size 0 remembers nothing."""
    cache: VerifiedTokenCache[int] = VerifiedTokenCache(0)
    cache.put("t", 1, valid_from=0, valid_until=10)
    assert cache.get("t", 1) is None


def test_clear() -> None:
    """clear() forgets everything."""
    cache: VerifiedTokenCache[int] = VerifiedTokenCache(3)
    cache.put("t", 1, valid_from=0, valid_until=10)
    cache.clear()
    assert cache.get("t", 1) is None
