"""Running one command: its async work in its own event loop, its failures as one line.

Every expected failure is a :class:`CliError`: one ``Error: …`` line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import click

from ..exceptions import KeyfobError
from ..settings import Settings

__all__ = ["CliError", "load_settings", "run"]

T = TypeVar("T")


class CliError(click.ClickException):
    """An expected failure: printed as one ``Error: …`` line, exit code 2."""

    exit_code = 2


def load_settings(overrides: Mapping[str, Any]) -> Settings:
    """``Settings.from_env(overrides)``; a bad value is a one-line error."""
    try:
        return Settings.from_env(overrides)
    except KeyfobError as exc:
        raise CliError(str(exc)) from None


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run one command's async body; keyfob's own errors become a one-line exit 2."""

    async def body() -> T:
        return await work()

    try:
        return asyncio.run(body())
    except KeyfobError as exc:
        raise CliError(str(exc)) from None
