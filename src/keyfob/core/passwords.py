"""Password hashing with argon2id (argon2-cffi) and the minimum password policy.

Unknown users get a dummy verification against a fixed hash of the same cost, so a
login answers in similar time whether or not the user exists (spec §7).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..exceptions import WeakPassword

__all__ = ["PROFILES", "PasswordHasher", "PasswordPolicy"]

#: Named argon2id cost presets. ``"rfc9106-low-memory"`` is argon2-cffi's default
#: (RFC 9106 second recommendation); ``"cheapest"`` is only for tests.
PROFILES: dict[str, argon2.Parameters] = {
    "rfc9106-low-memory": argon2.profiles.RFC_9106_LOW_MEMORY,
    "rfc9106-high-memory": argon2.profiles.RFC_9106_HIGH_MEMORY,
    "cheapest": argon2.profiles.CHEAPEST,  # Only for testing!
}


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """The minimum a password must meet: length counted in characters after NFKC."""

    min_length: int = 10
    max_length: int = 1024

    def check(self, password: str, *, username: str = "") -> None:
        """Raise :class:`WeakPassword` with a message a person can act on."""
        if not isinstance(password, str):
            raise WeakPassword("the password must be text")
        normalized = unicodedata.normalize("NFKC", password)
        if len(normalized) < self.min_length:
            raise WeakPassword(f"the password must be at least {self.min_length} characters long")
        if len(normalized) > self.max_length:
            raise WeakPassword(f"the password must be at most {self.max_length} characters long")
        if len(set(normalized)) < 4:
            raise WeakPassword("the password must use at least 4 different characters")
        if username and normalized.casefold() == username.casefold():
            raise WeakPassword("the password must not be the username")


class PasswordHasher:
    """argon2id hashing, verification, rehash detection and dummy verification."""

    __slots__ = ("_dummy_hash", "_hasher")

    def __init__(self, profile: str = "rfc9106-low-memory") -> None:
        self._hasher = argon2.PasswordHasher.from_parameters(PROFILES[profile])
        self._dummy_hash = self._hasher.hash("keyfob dummy password, never valid")

    def hash(self, password: str) -> str:
        return self._hasher.hash(_normalize(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """True if the password matches; False on mismatch or an unreadable hash."""
        try:
            return self._hasher.verify(password_hash, _normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend the same work as a real verification, for a user that does not exist."""
        self.verify(self._dummy_hash, password)


def _normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)
