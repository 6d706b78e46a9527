"""Usernames per RFC 8265 PRECIS (UsernameCaseMapped / UsernameCasePreserved): look-alike
spellings name one account, invisible and control characters are refused by name."""

from __future__ import annotations

import pytest

from keyfob.core.usernames import MAX_USERNAME, display_username, lookup_names, username_key
from keyfob.exceptions import UserError


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["Alice", "ALICE", "alice", "\uff21\uff2c\uff29\uff23\uff25"], "alice"),
        (["Jos\u00e9", "Jose\u0301", "JOS\u00c9"], "jos\u00e9"),
        (["\u00c5ngstr\u00f6m", "A\u030angstro\u0308m"], "\u00e5ngstr\u00f6m"),
        (["john doe", "  John Doe  "], "john doe"),
    ],
)
def test_look_alike_spellings_have_one_key(spellings: list[str], key: str) -> None:
    """Composed and decomposed forms, capitals and full-width letters map to one key."""
    assert {username_key(s) for s in spellings} == {key}


def test_the_shown_name_keeps_capitals_but_not_width_or_decomposition() -> None:
    """The stored name is case-preserved, NFC, with full-width letters mapped."""
    assert display_username("\uff2a\uff4f\uff53e\u0301") == "Jos\u00e9"
    assert display_username("  Alice ") == "Alice"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("ali\u200bce", "U+200B ZERO WIDTH SPACE"),
        ("\ufeffalice", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("alice\u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("ali\u0085ce", "U+0085"),
        ("ali\u009bce", "U+009B"),
        ("ali\x07ce", "U+0007"),
        ("ali\u200dce", "U+200D ZERO WIDTH JOINER"),
        ("ali\u00a0ce", "U+00A0 NO-BREAK SPACE"),
        ("\u2163ever", "U+2163 ROMAN NUMERAL FOUR"),
    ],
)
def test_invisible_control_and_compatibility_characters_are_refused(name: str, words: str) -> None:
    """The error names the character as typed, so a person can see what to remove."""
    with pytest.raises(UserError, match="must not contain") as raised:
        display_username(name)
    assert words in str(raised.value)
    with pytest.raises(UserError, match="must not contain"):
        username_key(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("john  doe", "two spaces in a row"),
        ("a" * (MAX_USERNAME + 1), "at most 150 characters"),
        ("\u05d0a", "right-to-left"),
        (42, "must be text"),
    ],
)
def test_other_refusals_say_why(name: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        username_key(name)


def test_lookup_tries_the_key_then_the_name_as_stored_before_precis() -> None:
    """A name whose key equals its casefold is looked up once; one that maps elsewhere
    or is now refused is also looked up as accounts made before PRECIS stored it."""
    assert lookup_names(" Alice ") == ("alice",)
    assert lookup_names("\uff41lice") == ("alice", "\uff41lice")
    assert lookup_names("ali\u200bce") == ("ali\u200bce",)
    assert lookup_names("   ") == ()
    assert lookup_names("x" * 1000) == ()
