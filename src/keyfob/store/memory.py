"""The in-memory store: for tests and single-process experiments. Nothing survives a restart.

Each operation runs without awaiting in the middle, so on one event loop it is atomic,
which is all the conformance suite asks of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..core.authorization_codes import AuthorizationCode
from ..core.clients import Client
from ..core.keys import KeyRecord
from ..core.models import EventKind, SecurityEvent, Session, User
from ..exceptions import ClientExists, StoreIntegrityError, UserExists
from .memory_webhooks import MemoryWebhooks
from .protocol import RevokedSession

__all__ = ["MemoryStore"]


class MemoryStore(MemoryWebhooks):
    """A :class:`keyfob.store.Store` kept in dictionaries."""

    scheme = "memory"
    #: Every write is visible the moment it returns: nothing is in flight.
    max_write_delay = 0.0

    def __init__(self) -> None:
        super().__init__()
        self._sessions: dict[str, Session] = {}
        self._users: dict[str, User] = {}
        self._user_ids_by_name: dict[str, str] = {}
        self._events: list[SecurityEvent] = []
        self._keys: dict[str, KeyRecord] = {}
        self._clients: dict[str, Client] = {}
        #: (client_id, jti) -> expires_at of used client assertions.
        self._assertions: dict[tuple[str, str], float] = {}
        self._codes: dict[bytes, AuthorizationCode] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._sessions)} sessions>)"

    async def open(self) -> None:
        return None

    async def migrate(self) -> list[str]:
        return []

    async def close(self) -> None:
        return None

    # sessions

    async def create_session(self, session: Session) -> None:
        if session.sid in self._sessions:
            raise StoreIntegrityError(f"session {session.sid} exists already")
        self._sessions[session.sid] = session

    async def rotate(
        self,
        sid: str,
        *,
        counter: int,
        secret_hash: bytes,
        now: float,
        idle_ttl: float,
        client_id: str | None = None,
    ) -> Session | None:
        s = self._sessions.get(sid)
        if (
            s is None
            or s.counter != counter
            or (client_id is not None and s.client_id != client_id)
            or s.secret_hash != secret_hash
            or s.revoked_at is not None
            or now >= s.idle_expires_at
            or now >= s.absolute_expires_at
        ):
            return None
        updated = dataclasses.replace(
            s,
            counter=counter + 1,
            rotated_at=now,
            last_used_at=now,
            idle_expires_at=min(now + idle_ttl, s.absolute_expires_at),
        )
        self._sessions[sid] = updated
        return updated

    async def get_session(self, sid: str) -> Session | None:
        return self._sessions.get(sid)

    async def revoke_session(
        self, sid: str, *, now: float, reason: str, user_id: str | None = None
    ) -> Session | None:
        s = self._sessions.get(sid)
        if s is None or s.revoked_at is not None or (user_id is not None and s.user_id != user_id):
            return None
        revoked = dataclasses.replace(s, revoked_at=now, revoked_reason=reason)
        self._sessions[sid] = revoked
        return revoked

    async def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, except_sid: str | None = None
    ) -> list[str]:
        sids = [
            s.sid
            for s in self._sessions.values()
            if s.user_id == user_id and s.revoked_at is None and s.sid != except_sid
        ]
        for sid in sids:
            self._sessions[sid] = dataclasses.replace(
                self._sessions[sid], revoked_at=now, revoked_reason=reason
            )
        return sids

    async def list_sessions(self, user_id: str, *, now: float) -> list[Session]:
        live = [s for s in self._sessions.values() if s.user_id == user_id and s.is_live(now)]
        return sorted(live, key=lambda s: s.created_at, reverse=True)

    async def revoked_since(self, since: float, *, now: float) -> list[RevokedSession]:
        return [
            RevokedSession(s.sid, s.revoked_at, s.absolute_expires_at)
            for s in self._sessions.values()
            if s.revoked_at is not None and s.revoked_at >= since and s.absolute_expires_at > now
        ]

    async def purge_sessions(self, *, now: float, revoked_before: float, limit: int) -> int:
        doomed = [
            s.sid
            for s in self._sessions.values()
            if s.is_expired(now) or (s.revoked_at is not None and s.revoked_at < revoked_before)
        ][:limit]
        for sid in doomed:
            del self._sessions[sid]
        return len(doomed)

    async def count_sessions(self) -> int:
        return len(self._sessions)

    def revocation_marker(self) -> object:
        # Every revocation goes through this process's manager, which records it at once.
        # Managers sharing one MemoryStore (tests) call sync_revocations() themselves.
        return None

    # users

    async def create_user(self, user: User) -> None:
        key = user.username.casefold()
        if user.id in self._users:
            raise StoreIntegrityError(f"user {user.id} exists already")
        if key in self._user_ids_by_name:
            raise UserExists("that username is already taken")
        self._users[user.id] = user
        self._user_ids_by_name[key] = user.id

    async def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    async def get_user_by_name(self, username: str) -> User | None:
        user_id = self._user_ids_by_name.get(username.casefold())
        return None if user_id is None else self._users[user_id]

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        user = self._users.get(user_id)
        if user is not None:
            self._users[user_id] = dataclasses.replace(user, password_hash=password_hash)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        ordered = sorted(self._users.values(), key=lambda u: (u.created_at, u.username))
        return ordered[offset : offset + limit]

    # events

    async def record_event(self, event: SecurityEvent) -> None:
        self._events.append(dataclasses.replace(event, id=len(self._events) + 1))

    async def list_events(
        self,
        *,
        limit: int = 100,
        kind: EventKind | None = None,
        user_id: str | None = None,
        sid: str | None = None,
        before_id: int | None = None,
    ) -> list[SecurityEvent]:
        out: list[SecurityEvent] = []
        for e in reversed(self._events):
            if len(out) >= limit:
                break
            if (
                (kind is None or e.kind == kind)
                and (user_id is None or e.user_id == user_id)
                and (sid is None or e.sid == sid)
                and (before_id is None or (e.id is not None and e.id < before_id))
            ):
                out.append(e)
        return out

    # signing keys

    async def load_keys(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    async def save_keys(self, records: Sequence[KeyRecord]) -> None:
        for r in records:
            self._keys[r.kid] = r

    async def delete_keys(self, kids: Sequence[str]) -> None:
        for kid in kids:
            self._keys.pop(kid, None)

    # clients

    async def create_client(self, client: Client) -> None:
        if client.client_id in self._clients:
            raise ClientExists(f"the client id {client.client_id!r} is taken")
        self._clients[client.client_id] = client

    async def get_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    async def list_clients(self) -> list[Client]:
        return sorted(self._clients.values(), key=lambda c: (c.created_at, c.client_id))

    async def delete_client(self, client_id: str) -> bool:
        if self._clients.pop(client_id, None) is None:
            return False
        for key in [k for k in self._assertions if k[0] == client_id]:
            del self._assertions[key]
        for code_hash in [h for h, c in self._codes.items() if c.client_id == client_id]:
            del self._codes[code_hash]
        return True

    async def set_client_secret_hash(self, client_id: str, secret_hash: bytes) -> bool:
        client = self._clients.get(client_id)
        if client is None:
            return False
        self._clients[client_id] = dataclasses.replace(client, secret_hash=secret_hash)
        return True

    async def use_assertion_id(
        self, client_id: str, jti: str, *, expires_at: float, now: float
    ) -> bool:
        for key in [k for k, exp in self._assertions.items() if exp <= now]:
            del self._assertions[key]
        if client_id not in self._clients:
            raise StoreIntegrityError(f"no client {client_id!r} to record an assertion of")
        if (client_id, jti) in self._assertions:
            return False
        self._assertions[(client_id, jti)] = expires_at
        return True

    # authorization codes

    async def create_authorization_code(self, code: AuthorizationCode) -> None:
        if code.code_hash in self._codes:
            raise StoreIntegrityError("that authorization code exists already")
        if code.client_id not in self._clients:
            raise StoreIntegrityError(f"no client {code.client_id!r} to issue a code to")
        self._codes[code.code_hash] = code

    async def get_authorization_code(self, code_hash: bytes) -> AuthorizationCode | None:
        return self._codes.get(code_hash)

    async def use_authorization_code(
        self, code_hash: bytes, *, now: float, sid: str | None
    ) -> bool:
        code = self._codes.get(code_hash)
        if code is None or code.used_at is not None:
            return False
        self._codes[code_hash] = dataclasses.replace(code, used_at=now, sid=sid)
        return True

    async def purge_authorization_codes(self, *, expired_before: float, limit: int) -> int:
        doomed = [h for h, c in self._codes.items() if c.expires_at < expired_before][:limit]
        for code_hash in doomed:
            del self._codes[code_hash]
        return len(doomed)
