"""argon2id hashing, rehash detection, dummy verification, and the password policy."""

from __future__ import annotations

import pytest

from keyfob import WeakPassword
from keyfob.core.passwords import PasswordHasher, PasswordPolicy


def test_hash_is_argon2id_and_verifies() -> None:
    """Hashes are argon2id and verify only the right password."""
    h = PasswordHasher("cheapest")
    digest = h.hash("correct horse battery staple")
    assert digest.startswith("$argon2id$")
    assert h.verify(digest, "correct horse battery staple")
    assert not h.verify(digest, "wrong")
    assert not h.verify("not a hash", "anything")


def test_unicode_passwords_are_normalised() -> None:
    """The same password typed in composed or decomposed form verifies."""
    h = PasswordHasher("cheapest")
    assert h.verify(h.hash("caf\u00e9-password"), "cafe\u0301-password")


def test_needs_rehash_when_parameters_change() -> None:
    """A hash made with other parameters needs rehashing."""
    cheap, default = PasswordHasher("cheapest"), PasswordHasher()
    assert default.needs_rehash(cheap.hash("x" * 12))
    assert not cheap.needs_rehash(cheap.hash("x" * 12))


def test_dummy_verify_does_argon2_work() -> None:
    """dummy_verify runs a real verification (and so takes argon2 time) and returns nothing."""
    PasswordHasher("cheapest").dummy_verify("anything")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 10"),
        ("aaaaaaaaaaaa", "4 different"),
        ("x" * 2000, "at most 1024"),
        ("alice-the-user", "not be the username"),
    ],
)
def test_policy_messages(password: str, message: str) -> None:
    """Each policy failure says what to do."""
    with pytest.raises(WeakPassword, match=message):
        PasswordPolicy().check(password, username="alice-the-user")


def test_policy_accepts_a_passphrase() -> None:
    """A long passphrase passes."""
    PasswordPolicy().check("correct horse battery staple", username="alice")
