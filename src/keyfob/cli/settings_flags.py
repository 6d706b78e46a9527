"""``keyfob serve``'s settings flags and help, derived from the settings' descriptions.

Every flag, its choices, its help and the default it shows come from
:data:`keyfob.settings.SETTINGS`, so they cannot drift from ``Settings``. A flag defaults
to "not given" (``None``): its value is passed on as the text its ``KEYFOB_*`` variable
would hold, so ``Settings.from_env`` reads a flag and a variable by the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from ..settings import SETTINGS, SettingDescription

__all__ = ["flag_values", "settings_epilog", "settings_options"]


def settings_epilog() -> str:
    """The ``Settings`` section of ``serve --help``: every variable, flag or not."""
    width = max(len(s.env) for s in SETTINGS)
    lines = ["\b", "Settings (environment variable, then the flag that overrides it):"]
    for s in SETTINGS:
        flag = f" [{s.flag}]" if s.flag else ""
        lines.append(f"  {s.env:<{width}}  {s.help}; default {s.default_text}{flag}")
    return "\n".join(lines)


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add a flag for every setting that has one; each defaults to 'not given' (None)."""
    for s in reversed(SETTINGS):
        if s.flag is not None:
            command = _option(s, s.flag)(command)
    return command


def _option(s: SettingDescription, flag: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    help_text = f"{s.help} [env {s.env}; default {s.default_text}]"
    if s.is_switch:
        # Both ways, since a switch may default to on (--access-log/--no-access-log).
        pair = f"{flag}/--no-{flag.removeprefix('--')}"
        return click.option(pair, s.name, default=None, help=help_text)
    if s.choices:
        return click.option(
            flag, s.name, type=click.Choice(s.choices), default=None, help=help_text
        )
    return click.option(flag, s.name, default=None, help=help_text)


def flag_values(values: Mapping[str, Any]) -> dict[str, str]:
    """The settings given as flags, as the text their environment variable would hold."""
    out: dict[str, str] = {}
    for s in SETTINGS:
        value = values.get(s.name)
        if value is None:
            continue
        out[s.name] = ("true" if value else "false") if s.is_switch else str(value)
    return out
