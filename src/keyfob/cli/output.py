"""What the commands print: UTC times, aligned tables, store URLs with passwords masked.

Cells come from clients (user agents, usernames), so control characters never reach
the terminal; the CLI shows ids, never a token or a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from ..settings import Settings

__all__ = ["cell", "echo_table", "mask_url", "render_table", "store_description", "when"]

_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cell(value: object, limit: int = 60) -> str:
    """Printable text: user agents and usernames come from clients, so no control codes."""
    text = "".join(c if c.isprintable() else "?" for c in str(value)) or "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table with aligned columns (the last one is not padded)."""
    body = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = []
    for row in [list(headers), *body]:
        padded = [v.ljust(widths[i]) for i, v in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> None:
    if rows:
        click.echo(render_table(headers, rows))
    else:
        click.echo(empty)


def mask_url(url: str) -> str:
    """The URL with any password (``user:…@``, ``?password=…``) replaced by ``***``.

    Deliberately textual rather than ``urllib.parse``: a URL that does not parse (a
    password with an unescaped ``/`` or ``@``) must still not print its password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{hostpart}"
    rest = _PASSWORD_PARAM.sub(r"\1***", rest)
    return f"{scheme}://{rest}"


def store_description(settings: Settings) -> str:
    url = mask_url(settings.store_url)
    if settings.store_url.startswith("sqlite:///"):
        path = Path(settings.store_url.removeprefix("sqlite:///")).resolve()
        return f"{url} ({path})"
    return url
