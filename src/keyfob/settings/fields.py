"""Each setting described once, where :class:`~keyfob.settings.Settings` declares it.

A field is declared as ``field(default=…, metadata=about(…))`` (in the spirit of
Starlette's ``config`` and hynek's presets): its default, how its ``KEYFOB_*`` variable
is read, its help text, whether ``keyfob serve`` has a flag for it, and, when the default
is not a literal value, how to say it. The type annotation supplies the rest: a
``Literal`` lists the allowed values.

:func:`describe` joins the two into one :class:`SettingDescription` per field; the
environment parsing, ``keyfob serve``'s flags and help, and the documentation's tables
all read those descriptions, so none of them can drift from the settings' defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .values import Parser, format_duration, parse_duration_setting, parse_switch, parse_text

__all__ = ["SettingDescription", "about", "describe"]

_METADATA_KEY = "keyfob"


@dataclass(frozen=True, slots=True)
class _Declared:
    """What a field declaration says beyond its name, type and default."""

    help: str
    parse: Parser
    flag: bool
    default_text: str | None


def about(
    help: str,
    *,
    parse: Parser = parse_text,
    flag: bool = False,
    default_text: str | None = None,
) -> Mapping[str, object]:
    """The ``metadata`` of one settings field: ``field(default=…, metadata=about(…))``.

    ``help`` is one line, shown by ``keyfob serve --help`` and in the docs; ``parse``
    reads the variable's text; ``flag`` gives ``keyfob serve`` a ``--name`` option;
    ``default_text`` says the default in words when the value is not what applies (an
    empty issuer means the server's own URL).
    """
    return {_METADATA_KEY: _Declared(help=help, parse=parse, flag=flag, default_text=default_text)}


@dataclass(frozen=True, slots=True)
class SettingDescription:
    """One setting as every edge sees it: the environment, the CLI and the docs."""

    #: The field name, e.g. ``access_ttl``.
    name: str
    #: The resolved type annotation.
    type: Any
    default: Any
    help: str
    #: ``(text, name) -> value`` for the ``KEYFOB_*`` variable's text.
    parse: Parser
    #: The ``keyfob serve`` option, e.g. ``--access-ttl``; ``None`` for environment only.
    flag: str | None
    #: The allowed values of an enumerated setting (from its ``Literal`` type).
    choices: tuple[str, ...]
    #: The default as ``serve --help`` and the docs show it (``15m``, ``unset``, …).
    default_text: str
    #: Whether ``default_text`` is a value one could write (``15m``), not words.
    default_is_literal: bool

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``KEYFOB_ACCESS_TTL``."""
        return "KEYFOB_" + self.name.upper()

    @property
    def is_switch(self) -> bool:
        """An on/off setting: its flag takes no value."""
        return self.type is bool


def describe(cls: type[Any]) -> tuple[SettingDescription, ...]:
    """One description per field of ``cls``, in declaration order."""
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        declared = f.metadata[_METADATA_KEY]
        hint = hints[f.name]
        choices = tuple(get_args(hint)) if get_origin(hint) is Literal else ()
        if declared.default_text is not None:
            shown, literal = declared.default_text, False
        else:
            shown, literal = _shown_default(f.default, declared.parse)
        out.append(
            SettingDescription(
                name=f.name,
                type=hint,
                default=f.default,
                help=declared.help,
                parse=declared.parse,
                flag="--" + f.name.replace("_", "-") if declared.flag else None,
                choices=choices,
                default_text=shown,
                default_is_literal=literal,
            )
        )
    return tuple(out)


def _shown_default(value: object, parse: Parser) -> tuple[str, bool]:
    """A default written the way its variable would be: ``15m``, ``off``, ``unset``."""
    if value is None:
        return "unset", False
    if value == ():
        return "none", False
    if parse is parse_switch:
        return ("on" if value else "off"), False
    if parse is parse_duration_setting and isinstance(value, int | float):
        return format_duration(value), True
    return str(value), True
