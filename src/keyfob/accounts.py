"""Accounts: registration, password checks and password changes (spec §7).

Passwords are argon2id hashes (:mod:`keyfob.core.passwords`); unknown users cost the same
hashing work as known ones, so the answer and its timing do not tell whether an account
exists. Ending the sessions after a password change is the session side's job; the
:class:`~keyfob.SessionManager` composes the two.
"""

from __future__ import annotations

import secrets

from .core.clock import Clock
from .core.models import EventKind, User
from .core.passwords import PasswordHasher, PasswordPolicy
from .events import EventLog
from .exceptions import AuthenticationFailed, UserError, UserNotFound
from .store.protocol import UserStore

__all__ = ["MAX_USERNAME", "Accounts", "clean_username"]

MAX_USERNAME = 150


class Accounts:
    """Users and their passwords in one store."""

    __slots__ = ("_clock", "_events", "_hasher", "_policy", "_store")

    def __init__(
        self,
        store: UserStore,
        events: EventLog,
        *,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        clock: Clock,
    ) -> None:
        self._store = store
        self._events = events
        self._hasher = hasher
        self._policy = policy
        self._clock = clock

    async def register(self, username: str, password: str) -> User:
        """Create an account; :class:`WeakPassword` or :class:`UserExists` say why not."""
        username = clean_username(username)
        self._policy.check(password, username=username)
        now = self._clock.now()
        user = User(
            id=secrets.token_urlsafe(12),
            username=username,
            password_hash=self._hasher.hash(password),
            created_at=now,
        )
        await self._store.create_user(user)
        await self._events.record(EventKind.USER_CREATED, now, user_id=user.id)
        return user

    async def authenticate(self, username: str, password: str, *, ip: str = "") -> User:
        """The user whose password this is, or :class:`AuthenticationFailed`.

        Unknown users cost the same argon2 work as known ones (no enumeration by timing).
        """
        now = self._clock.now()
        user = None
        if isinstance(username, str) and 0 < len(username) <= MAX_USERNAME:
            user = await self._store.get_user_by_name(username.strip())
        if not isinstance(password, str):
            password = ""
        if user is None:
            self._hasher.dummy_verify(password)
            await self._events.record(EventKind.LOGIN_FAILED, now, ip=ip, detail="unknown user")
            raise AuthenticationFailed("wrong username or password")
        if not self._hasher.verify(user.password_hash, password):
            await self._events.record(
                EventKind.LOGIN_FAILED, now, user_id=user.id, ip=ip, detail="wrong password"
            )
            raise AuthenticationFailed("wrong username or password")
        if self._hasher.needs_rehash(user.password_hash):
            await self._store.set_password_hash(user.id, self._hasher.hash(password))
        return user

    async def change_password(
        self, user_id: str, old_password: str, new_password: str, *, sid: str | None = None
    ) -> User:
        """Check the current password, then store the new one; the user it belongs to.

        ``sid`` is the session the change was made from, for the security event.
        """
        user = await self._store.get_user(user_id)
        if user is None:
            raise UserNotFound("no such user")
        if not self._hasher.verify(user.password_hash, old_password):
            raise AuthenticationFailed("the current password is wrong")
        self._policy.check(new_password, username=user.username)
        await self._store.set_password_hash(user.id, self._hasher.hash(new_password))
        await self._events.record(
            EventKind.PASSWORD_CHANGED, self._clock.now(), user_id=user.id, sid=sid
        )
        return user

    async def get_user(self, user_id: str) -> User | None:
        return await self._store.get_user(user_id)

    async def get_user_by_name(self, username: str) -> User | None:
        return await self._store.get_user_by_name(username)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        return await self._store.list_users(limit=limit, offset=offset)


def clean_username(username: object) -> str:
    """The username as stored, or :class:`UserError` saying what is wrong with it."""
    if not isinstance(username, str):
        raise UserError("the username must be text")
    name = username.strip()
    if not name:
        raise UserError("the username must not be empty")
    if len(name) > MAX_USERNAME:
        raise UserError(f"the username must be at most {MAX_USERNAME} characters")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise UserError("the username must not contain control characters")
    return name
