"""A bounded cache of access tokens this process has already verified.

Keyed by the exact token text, so a hit needs no parsing and no signature check. Each
entry remembers the window in which the token is valid (``nbf``/``iat`` to ``exp``,
widened by the leeway), and a hit outside that window is a miss: expiry is enforced on
every hit. Revocation is not the cache's business; the caller checks the revoked-sid set
on every request, hit or miss. A change of key set clears the cache, so a key that is
withdrawn stops verifying at once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["VerifiedTokenCache"]

V = TypeVar("V")


class VerifiedTokenCache(Generic[V]):
    """token text → (value, valid_from, valid_until), at most ``max_entries`` of them."""

    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 0:
            raise ValueError("max_entries cannot be negative")
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[V, float, float]] = OrderedDict()

    def get(self, token: str, now: float) -> V | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        value, valid_from, valid_until = entry
        if valid_from <= now < valid_until:
            return value
        # Expired (or not yet valid): drop it and let the full check give the exact error.
        del self._entries[token]
        return None

    def put(self, token: str, value: V, *, valid_from: float, valid_until: float) -> None:
        if self._max == 0:
            return
        if token not in self._entries and len(self._entries) >= self._max:
            # Oldest first: a token verified long ago is the likeliest to have expired.
            self._entries.popitem(last=False)
        self._entries[token] = (value, valid_from, valid_until)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"VerifiedTokenCache(<{len(self._entries)}/{self._max} tokens>)"
