"""Usernames per RFC 8265 (PRECIS), with the ``precis-i18n`` library.

Two strings that look alike must name one account, and a name must not hide characters
a person cannot see. So a username is enforced with the PRECIS profiles of RFC 8265 §3:

- the **key** (what makes a name unique, what a login looks up) is the
  *UsernameCaseMapped* form: full-width letters mapped to their usual width, lower-case,
  NFC, so ``Alice``, full-width ``ALICE`` and ``alice`` are one account, and so are the
  composed and decomposed spellings of ``José``;
- the **name shown** (stored with the account) is the *UsernameCasePreserved* form: the
  same, with the user's capitals kept;
- names that *IdentifierClass* disallows are refused with a message naming the
  character: zero-width and other invisible characters, the BOM, bidi overrides, C0 and
  C1 controls, symbols, compatibility characters, and text that breaks the bidi rule.

Spaces: as RFC 8265 §3.5 allows, a username may be several parts separated by single
spaces, each part enforced on its own (accounts like ``john doe`` existed before, and a
space is visible). Leading and trailing whitespace is trimmed as before.

The stores compare ``str.casefold()`` of the name they are given (migration 0001), which
is the *key* of the name when they are given a key. Existing names, stored before this
module, keep working without a migration: their stored key is ``casefold(name)``, and
for a name already in NFC without full-width letters (all ASCII names among them)
``casefold(key(name)) == casefold(name)``, so the login finds the same row. A login whose
name maps elsewhere, or which PRECIS now refuses, is also looked up by that old key
(:func:`lookup_names`), so accounts registered with such names can still sign in;
no new account can be made with them.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import precis_i18n

from ..exceptions import UserError

__all__ = ["MAX_USERNAME", "display_username", "lookup_names", "username_key"]

#: The longest username, in characters of the enforced form.
MAX_USERNAME: Final = 150

_CASE_MAPPED: Final = precis_i18n.get_profile("UsernameCaseMapped")
_CASE_PRESERVED: Final = precis_i18n.get_profile("UsernameCasePreserved")

# precis-i18n's reasons ("DISALLOWED/<reason>") in words a person can act on.
_REASONS: Final = {
    "controls": "a control character",
    "precis_ignorable_properties": "an invisible or formatting character",
    "spaces": "a space other than the plain space",
    "has_compat": "a compatibility character",
    "symbols": "a symbol",
    "punctuation": "punctuation other than ASCII",
    "other_letter_digits": "a character of no usable category",
    "unassigned": "a character that Unicode does not assign",
    "old_hangul_jamo": "an old Hangul jamo",
    "exceptions": "a character that PRECIS disallows",
    "backwardcompatible": "a character that PRECIS disallows",
    "context": "a joiner or mark outside the context that permits it",
    "other": "a character that PRECIS disallows",
}


def username_key(name: object) -> str:
    """The *UsernameCaseMapped* form: one per account; raises :class:`UserError`."""
    return _enforce(name, _CASE_MAPPED)


def display_username(name: object) -> str:
    """The *UsernameCasePreserved* form, stored and shown; raises :class:`UserError`."""
    return _enforce(name, _CASE_PRESERVED)


def lookup_names(name: str) -> tuple[str, ...]:
    """What a login looks ``name`` up by, in order: its key, then the name as accounts
    made before PRECIS enforcement stored it, when that can differ. Never raises."""
    legacy = name.strip()
    try:
        key = username_key(name)
    except UserError:
        return (legacy,) if legacy and len(legacy) <= MAX_USERNAME else ()
    return (key,) if legacy.casefold() == key.casefold() else (key, legacy)


def _enforce(name: object, profile: precis_i18n.profile.Profile) -> str:
    if not isinstance(name, str):
        raise UserError("the username must be text")
    name = name.strip()
    if not name:
        raise UserError("the username must not be empty")
    # Before the enforcement, which costs time in proportion to the length.
    if len(name) > 4 * MAX_USERNAME:
        raise UserError(f"the username must be at most {MAX_USERNAME} characters")
    parts = name.split(" ")
    if "" in parts:
        raise UserError("the username must not contain two spaces in a row")
    enforced = " ".join(_enforce_part(part, profile) for part in parts)
    if len(enforced) > MAX_USERNAME:
        raise UserError(f"the username must be at most {MAX_USERNAME} characters")
    return enforced


def _enforce_part(part: str, profile: precis_i18n.profile.Profile) -> str:
    try:
        return str(profile.enforce(part))
    except UnicodeEncodeError as exc:
        reason = str(exc.reason).removeprefix("DISALLOWED/")
        if reason == "bidi_rule":
            raise UserError(
                "the username mixes right-to-left and left-to-right text in a way that can "
                "display misleadingly (RFC 5893 bidi rule)"
            ) from None
        if reason == "empty":
            raise UserError("the username must not be empty") from None
        char = str(exc.object)[exc.start] if exc.start < len(str(exc.object)) else ""
        what = _REASONS.get(reason, "a character that PRECIS disallows")
        raise UserError(f"the username must not contain {what}: {_describe(char)}") from None


def _describe(char: str) -> str:
    if not char:
        return "(end of text)"
    return f"U+{ord(char):04X} {unicodedata.name(char, '(unnamed)')}"
