"""Structured values from the fuzzer's bytes, with no dependency on atheris.

libFuzzer mutates flat bytes; a :class:`Reader` consumes them as small choices (an
index into a list, a bounded integer, a length-prefixed string), so the mutations land
on meaningful fields. When the bytes run out every read returns its smallest value, so
any input at all is a valid, if short, test. :class:`Writer` is the inverse, used to
build the seed corpus (:mod:`fuzz.seeds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["Reader", "Writer"]

T = TypeVar("T")

# How consume_text turns bytes into str: each mode reaches a different class of text.
_TEXT_MODES = ("ascii", "latin-1", "utf-8", "utf-16-surrogates")


class Reader:
    """Consumes the fuzzer's bytes from the front."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def byte(self) -> int:
        chunk = self._take(1)
        return chunk[0] if chunk else 0

    def boolean(self) -> bool:
        return bool(self.byte() & 1)

    def integer(self, low: int, high: int) -> int:
        """An integer in ``[low, high]`` from as few bytes as the range needs."""
        span = high - low
        width = max(1, (span.bit_length() + 7) // 8)
        return low + int.from_bytes(self._take(width).ljust(width, b"\0"), "big") % (span + 1)

    def pick(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def raw(self, max_length: int) -> bytes:
        """A length-prefixed byte string of at most ``max_length`` bytes."""
        return self._take(self.integer(0, max_length))

    def text(self, max_length: int) -> str:
        """A length-prefixed string, decoded in one of four ways (ASCII, Latin-1, UTF-8
        with replacement characters, or UTF-16 that may hold lone surrogates)."""
        mode = self.pick(_TEXT_MODES)
        return _decode(self.raw(max_length), mode)

    def rest(self) -> bytes:
        """Every byte not consumed yet."""
        return self._take(len(self._data) - self._pos)

    def rest_text(self) -> str:
        mode = self.pick(_TEXT_MODES)
        return _decode(self.rest(), mode)


def _decode(data: bytes, mode: str) -> str:
    if mode == "ascii":
        return bytes(b & 0x7F for b in data).decode("ascii")
    if mode == "latin-1":
        return data.decode("latin-1")
    if mode == "utf-8":
        return data.decode("utf-8", "replace")
    return data[: len(data) // 2 * 2].decode("utf-16-le", "surrogatepass")


class Writer:
    """Builds the bytes a :class:`Reader` will read back as the same values."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def byte(self, value: int) -> Writer:
        self._parts.append(bytes((value,)))
        return self

    def boolean(self, value: bool) -> Writer:
        return self.byte(int(value))

    def integer(self, low: int, high: int, value: int) -> Writer:
        if not low <= value <= high:
            raise ValueError(f"{value} is not in [{low}, {high}]")
        width = max(1, ((high - low).bit_length() + 7) // 8)
        self._parts.append((value - low).to_bytes(width, "big"))
        return self

    def pick(self, options: Sequence[T], value: T) -> Writer:
        return self.integer(0, len(options) - 1, list(options).index(value))

    def raw(self, max_length: int, value: bytes) -> Writer:
        self.integer(0, max_length, len(value))
        self._parts.append(value)
        return self

    def text(self, max_length: int, value: str) -> Writer:
        """``value`` in UTF-8 mode (it must fit in ``max_length`` bytes)."""
        self.pick(_TEXT_MODES, "utf-8")
        return self.raw(max_length, value.encode("utf-8"))

    def rest(self, value: bytes) -> Writer:
        self._parts.append(value)
        return self

    def rest_text(self, value: str) -> Writer:
        self.pick(_TEXT_MODES, "utf-8")
        return self.rest(value.encode("utf-8"))

    def build(self) -> bytes:
        return b"".join(self._parts)
