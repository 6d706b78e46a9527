"""Accounts: registration, password checks and password changes (spec §7).

Passwords are argon2id hashes (:mod:`keyfob.core.passwords`), computed and checked in
a small pool of low-priority threads (:mod:`keyfob.password_pool`) so that logins never
stall the event loop; unknown users cost the same hashing work, in the same queue, as
known ones, so the answer and its timing do not tell whether an account exists.
Usernames are enforced per RFC 8265 (:mod:`keyfob.core.usernames`). Ending the sessions
after a password change is the session side's job; the :class:`~keyfob.SessionManager`
composes the two.
"""

from __future__ import annotations

import secrets

from .core.clock import Clock
from .core.models import EventKind, User
from .core.passwords import PasswordPolicy
from .core.usernames import display_username, lookup_names
from .events import EventLog
from .exceptions import AuthenticationFailed, UserNotFound
from .password_pool import PasswordPool
from .store.protocol import UserStore

__all__ = ["Accounts"]


class Accounts:
    """Users and their passwords in one store."""

    __slots__ = ("_clock", "_events", "_policy", "_store", "passwords")

    def __init__(
        self,
        store: UserStore,
        events: EventLog,
        *,
        passwords: PasswordPool,
        policy: PasswordPolicy,
        clock: Clock,
    ) -> None:
        self._store = store
        self._events = events
        #: Where every hash and check runs (off the event loop).
        self.passwords = passwords
        self._policy = policy
        self._clock = clock

    async def register(self, username: str, password: str) -> User:
        """Create an account; :class:`UserError` (a refused name), :class:`WeakPassword`
        or :class:`UserExists` say why not."""
        shown = display_username(username)
        self._policy.check(password, username=shown)
        password_hash = await self.passwords.hash(password)
        now = self._clock.now()
        # The store keys the account by casefold(name): the same key as the case-mapped
        # form's (see keyfob.core.usernames), so look-alike spellings collide here.
        user = User(
            id=secrets.token_urlsafe(12),
            username=shown,
            password_hash=password_hash,
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
        user = await self._find(username) if isinstance(username, str) else None
        if not isinstance(password, str):
            password = ""
        if user is None:
            await self.passwords.dummy_verify(password)
            await self._events.record(EventKind.LOGIN_FAILED, now, ip=ip, detail="unknown user")
            raise AuthenticationFailed("wrong username or password")
        if not await self.passwords.verify(user.password_hash, password):
            await self._events.record(
                EventKind.LOGIN_FAILED, now, user_id=user.id, ip=ip, detail="wrong password"
            )
            raise AuthenticationFailed("wrong username or password")
        if self.passwords.needs_rehash(user.password_hash):
            await self._store.set_password_hash(user.id, await self.passwords.hash(password))
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
        if not await self.passwords.verify(user.password_hash, old_password):
            raise AuthenticationFailed("the current password is wrong")
        self._policy.check(new_password, username=user.username)
        await self._store.set_password_hash(user.id, await self.passwords.hash(new_password))
        await self._events.record(
            EventKind.PASSWORD_CHANGED, self._clock.now(), user_id=user.id, sid=sid
        )
        return user

    async def get_user(self, user_id: str) -> User | None:
        return await self._store.get_user(user_id)

    async def get_user_by_name(self, username: str) -> User | None:
        """The account a login with ``username`` would reach, if any."""
        return await self._find(username)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        return await self._store.list_users(limit=limit, offset=offset)

    async def record_throttled(self, username: str, *, ip: str, detail: str) -> None:
        """Record that failed logins to ``username`` started a throttle (the account's
        id when the name is one; an unknown name is recorded without)."""
        user = await self._find(username) if isinstance(username, str) else None
        await self._events.record(
            EventKind.LOGIN_THROTTLED,
            self._clock.now(),
            user_id=user.id if user is not None else None,
            ip=ip,
            detail=detail,
        )

    def close(self) -> None:
        """Let the hashing threads end (they start again on the next hash)."""
        self.passwords.close()

    async def _find(self, username: str) -> User | None:
        # The PRECIS key first; then the name as pre-PRECIS accounts stored it.
        for name in lookup_names(username):
            user = await self._store.get_user_by_name(name)
            if user is not None:
                return user
        return None
