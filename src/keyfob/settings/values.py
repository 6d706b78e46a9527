"""How the text of a ``KEYFOB_*`` variable becomes a setting's value, and a value its text.

Each parser takes the text and the setting's name (for its error message) and raises
:class:`~keyfob.exceptions.ConfigurationError` when the text cannot be read. Durations
accept seconds or a unit suffix: ``900``, ``15m``, ``7d``. Secrets print masked.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable
from typing import Any

from ..exceptions import ConfigurationError

__all__ = [
    "Parser",
    "Secret",
    "format_duration",
    "parse_duration",
    "parse_duration_setting",
    "parse_listen_switch",
    "parse_networks",
    "parse_origins",
    "parse_rate_limit",
    "parse_secret",
    "parse_secrets",
    "parse_switch",
    "parse_text",
    "parse_whole_number",
]

#: ``(text, setting name) -> value``: reads one variable's text.
Parser = Callable[[str, str], Any]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
#: The units a duration is written back with, largest first (a week reads better as 7d).
_SHOWN_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


def parse_duration(value: str | float | int) -> float:
    """``"900"`` → 900.0, ``"15m"`` → 900.0, ``"7d"`` → 604800.0."""
    if isinstance(value, bool):
        raise ConfigurationError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigurationError(f"a duration cannot be negative: {value!r}")
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ConfigurationError(
            f"not a duration: {value!r} (use seconds or a suffix s, m, h, d, w: 900, 15m, 7d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact text :func:`parse_duration` reads back: 900.0 → ``"15m"``."""
    for suffix, size in _SHOWN_UNITS:
        if seconds and seconds % size == 0:
            return f"{seconds // size:g}{suffix}"
    return f"{seconds:g}s"


class Secret:
    """A string that never shows itself in repr or str (like Starlette's ``Secret``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)


def parse_text(raw: str, name: str) -> str:
    """The text as it is (URLs, names, and the enumerated settings, checked by Settings)."""
    return raw


def parse_duration_setting(raw: str, name: str) -> float:
    return parse_duration(raw)


def parse_whole_number(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None


def parse_switch(raw: str, name: str) -> bool:
    if raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"KEYFOB_{name.upper()} must be true or false, not {raw!r}")


def parse_secret(raw: str, name: str) -> Secret:
    return Secret(raw)


def parse_secrets(raw: str, name: str) -> tuple[Secret, ...]:
    """Comma-separated secrets."""
    return tuple(Secret(s.strip()) for s in raw.split(",") if s.strip())


def parse_origins(raw: str, name: str) -> tuple[str, ...]:
    """Comma-separated origins, without a trailing slash (browsers send none)."""
    return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


def parse_rate_limit(raw: str, name: str) -> str:
    """Limits in ``limits`` notation, checked now: ``10/minute;100/day``.

    Several limits are separated by ``;`` (or ``,``); each is ``N/unit`` or
    ``N per M units``. A typo fails at startup rather than at the first login.
    """
    if not isinstance(raw, str):
        raise ConfigurationError(f"KEYFOB_{name.upper()} must be text like 10/minute, not {raw!r}")
    text = raw.strip()
    try:
        # Imported here: limits imports asyncio, and `import keyfob` (settings included)
        # stays free of the event loop (tests/test_import_boundaries.py).
        from limits import parse_many
    except ImportError:
        # limits comes with the server extra; without it nothing enforces the limits,
        # and the server, which needs it, reads them again (RateLimiter) when it starts.
        return text
    try:
        items = parse_many(text) if text else []
    except ValueError:
        items = []
    if not items:
        raise ConfigurationError(
            f"KEYFOB_{name.upper()} is not a rate limit in limits notation: {raw!r} "
            "(e.g. 10/minute;100/day)"
        )
    if any(item.amount < 1 for item in items):
        raise ConfigurationError(f"KEYFOB_{name.upper()} must allow at least 1 request: {raw!r}")
    return text


def parse_networks(raw: str, name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks, each written back as a network
    (``10.0.0.1`` → ``10.0.0.1/32``). Host names and ``*`` are refused: trusting a name or
    everyone must be spelled out (``0.0.0.0/0,::/0``), never slip in by a typo."""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            raise ConfigurationError(
                f"KEYFOB_{name.upper()}: {item!r} is not an IP address or network ({exc}); "
                "write addresses or CIDRs such as 10.0.0.5,10.1.0.0/16 "
                "(0.0.0.0/0,::/0 trusts every peer)"
            ) from None
    return tuple(networks)


# RFC 6749 §3.3 scope-token: printable ASCII without space, '"' or '\'.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def parse_scopes(raw: str, name: str) -> tuple[str, ...]:
    """Scope tokens separated by spaces or commas, each an RFC 6749 scope-token."""
    tokens = tuple(dict.fromkeys(t for t in re.split(r"[\s,]+", raw) if t))
    bad = [t for t in tokens if not _SCOPE_TOKEN.fullmatch(t)]
    if bad:
        raise ConfigurationError(f"KEYFOB_{name.upper()}: {bad[0]!r} is not a scope token")
    return tokens


def parse_listen_switch(raw: str, name: str) -> str:
    """``off``, ``on`` (or another switch word), or a ``host:port`` to listen on
    (``[::1]:9100`` for IPv6)."""
    text = raw.strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return "on"
    if text in {"0", "false", "no", "off"}:
        return "off"
    host, sep, port = raw.strip().rpartition(":")
    if sep and host and port.isdigit() and 0 < int(port) < 65536:
        return raw.strip()
    raise ConfigurationError(f"KEYFOB_{name.upper()} must be off, on or HOST:PORT, not {raw!r}")
