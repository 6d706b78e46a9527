"""Rows of the SQL stores: the columns they select and the records those rows make.

The SQLite and PostgreSQL stores select the columns below, in this order, and turn what
comes back into keyfob's records here. A row is the column values in order: a tuple
from ``sqlite3``, an ``asyncpg.Record`` (which unpacks the same way) from asyncpg.

The drivers differ in one respect, the types. PostgreSQL's columns are typed, so what
asyncpg hands back is what the records hold. SQLite types values, not columns: a row
that something other than keyfob wrote may hold anything, so the SQLite store asks
:func:`session` to check the values the refresh rules compare (``checked=True``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from ..core.authorization_codes import AuthorizationCode
from ..core.clients import AUTH_METHODS, Client
from ..core.keys import KeyRecord
from ..core.models import DeviceInfo, EventKind, SecurityEvent, Session, User
from ..exceptions import StoreIntegrityError

__all__ = [
    "CLIENT_COLUMNS",
    "CODE_COLUMNS",
    "EVENT_COLUMNS",
    "KEY_COLUMNS",
    "SESSION_COLUMNS",
    "USER_COLUMNS",
    "client",
    "client_values",
    "code",
    "code_values",
    "event",
    "event_filters",
    "key",
    "session",
    "session_values",
    "user",
]

#: A row as a driver hands it back: the values of the selected columns, in order.
Row = Iterable[Any]

SESSION_COLUMNS: Final = (
    "sid, user_id, client_id, scope, secret_hash, counter, created_at, last_used_at, "
    "rotated_at, idle_expires_at, absolute_expires_at, user_agent, ip, revoked_at, "
    "revoked_reason, auth_time"
)
USER_COLUMNS: Final = "id, username, password_hash, created_at"
EVENT_COLUMNS: Final = "id, kind, at, user_id, sid, ip, detail"
KEY_COLUMNS: Final = (
    "kid, alg, public_jwk, private_encrypted, created_at, activates_at, retired_at, expires_at"
)

#: Redirect URIs are a JSON array; grant types and scopes, which hold no spaces, are
#: space-separated (like the session's scope).
CLIENT_COLUMNS: Final = (
    "client_id, name, auth_method, redirect_uris, grant_types, scopes, created_at, "
    "secret_hash, jwks, require_pkce, first_party, post_logout_redirect_uris"
)

CODE_COLUMNS: Final = (
    "code_hash, client_id, user_id, redirect_uri, scope, code_challenge, nonce, auth_time, "
    "created_at, expires_at, used_at, sid"
)


def session(row: Row, checked: bool = False) -> Session:
    """The session in a row of :data:`SESSION_COLUMNS`.

    ``checked``: the driver does not guarantee the column types (SQLite). Then a secret
    hash that is not bytes or a counter that is not a whole number is a
    :class:`StoreIntegrityError`, and every time is made a float.
    """
    (
        sid,
        user_id,
        client_id,
        scope,
        secret_hash,
        counter,
        created_at,
        last_used_at,
        rotated_at,
        idle_expires_at,
        absolute_expires_at,
        user_agent,
        ip,
        revoked_at,
        revoked_reason,
        auth_time,
    ) = row
    if checked:
        if not isinstance(secret_hash, bytes) or not isinstance(counter, int):
            raise StoreIntegrityError(f"session {sid!r} has an unreadable secret hash or counter")
        # float(): a REAL column can hand back a whole number as an int.
        created_at = float(created_at)
        last_used_at = float(last_used_at)
        idle_expires_at = float(idle_expires_at)
        absolute_expires_at = float(absolute_expires_at)
        if rotated_at is not None:
            rotated_at = float(rotated_at)
        if revoked_at is not None:
            revoked_at = float(revoked_at)
        if auth_time is not None:
            auth_time = float(auth_time)
    return Session(
        sid=sid,
        user_id=user_id,
        client_id=client_id,
        scope=scope,
        secret_hash=secret_hash,
        counter=counter,
        created_at=created_at,
        last_used_at=last_used_at,
        rotated_at=rotated_at,
        idle_expires_at=idle_expires_at,
        absolute_expires_at=absolute_expires_at,
        device=DeviceInfo(user_agent=user_agent, ip=ip),
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
        auth_time=auth_time,
    )


def session_values(s: Session) -> tuple[Any, ...]:
    """The values of :data:`SESSION_COLUMNS` for a new row holding ``s``."""
    return (
        s.sid,
        s.user_id,
        s.client_id,
        s.scope,
        s.secret_hash,
        s.counter,
        s.created_at,
        s.last_used_at,
        s.rotated_at,
        s.idle_expires_at,
        s.absolute_expires_at,
        s.device.user_agent,
        s.device.ip,
        s.revoked_at,
        s.revoked_reason,
        s.auth_time,
    )


def user(row: Row) -> User:
    """The user in a row of :data:`USER_COLUMNS`."""
    user_id, username, password_hash, created_at = row
    return User(id=user_id, username=username, password_hash=password_hash, created_at=created_at)


def event_filters(
    *, kind: EventKind | None, user_id: str | None, sid: str | None, before_id: int | None
) -> list[tuple[str, object]]:
    """The event-list filters that were given, as (column and comparison, value) pairs;
    each dialect adds its own placeholder after the comparison."""
    given = (
        ("kind =", None if kind is None else str(kind)),
        ("user_id =", user_id),
        ("sid =", sid),
        ("id <", before_id),
    )
    return [(column, value) for column, value in given if value is not None]


def event(row: Row) -> SecurityEvent:
    """The event in a row of :data:`EVENT_COLUMNS`; an unknown kind is an integrity error."""
    event_id, kind, at, user_id, sid, ip, detail = row
    try:
        event_kind = EventKind(kind)
    except ValueError:
        raise StoreIntegrityError(f"event {event_id} has an unknown kind {kind!r}") from None
    return SecurityEvent(
        kind=event_kind, at=at, user_id=user_id, sid=sid, ip=ip, detail=detail, id=event_id
    )


def key(row: Row) -> KeyRecord:
    """The signing key record in a row of :data:`KEY_COLUMNS`."""
    kid, alg, public_jwk, private_encrypted, created_at, activates_at, retired_at, expires_at = row
    return KeyRecord(
        kid=kid,
        alg=alg,
        public_jwk=public_jwk,
        private_encrypted=private_encrypted,
        created_at=created_at,
        activates_at=activates_at,
        retired_at=retired_at,
        expires_at=expires_at,
    )


def client(row: Row) -> Client:
    """The client in a row of :data:`CLIENT_COLUMNS`; what keyfob cannot read is an
    integrity error, never a client with a guessed method."""
    (
        client_id,
        name,
        auth_method,
        redirect_uris,
        grant_types,
        scopes,
        created_at,
        secret_hash,
        jwks,
        require_pkce,
        first_party,
        post_logout_redirect_uris,
    ) = row
    uris = _uri_list(redirect_uris)
    logout_uris = _uri_list(post_logout_redirect_uris)
    if (
        auth_method not in AUTH_METHODS
        or uris is None
        or logout_uris is None
        or not (secret_hash is None or isinstance(secret_hash, bytes))
    ):
        raise StoreIntegrityError(f"client {client_id!r} has an unreadable registration")
    return Client(
        client_id=client_id,
        name=name,
        auth_method=auth_method,
        redirect_uris=tuple(uris),
        grant_types=tuple(grant_types.split()),
        scopes=tuple(scopes.split()),
        created_at=float(created_at),
        secret_hash=secret_hash,
        jwks=jwks,
        require_pkce=bool(require_pkce),
        first_party=bool(first_party),
        post_logout_redirect_uris=tuple(logout_uris),
    )


def _uri_list(text: object) -> list[str] | None:
    """A JSON array of strings (a column of URIs), or None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        uris = json.loads(text)
    except ValueError:
        return None
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        return None
    return uris


def client_values(c: Client) -> tuple[Any, ...]:
    """The values of :data:`CLIENT_COLUMNS` for a row holding ``c``."""
    return (
        c.client_id,
        c.name,
        c.auth_method,
        json.dumps(list(c.redirect_uris)),
        " ".join(c.grant_types),
        " ".join(c.scopes),
        c.created_at,
        c.secret_hash,
        c.jwks,
        c.require_pkce,
        c.first_party,
        json.dumps(list(c.post_logout_redirect_uris)),
    )


def code(row: Row) -> AuthorizationCode:
    """The authorization code in a row of :data:`CODE_COLUMNS`."""
    (
        code_hash,
        client_id,
        user_id,
        redirect_uri,
        scope,
        code_challenge,
        nonce,
        auth_time,
        created_at,
        expires_at,
        used_at,
        sid,
    ) = row
    if not isinstance(code_hash, bytes):
        raise StoreIntegrityError("an authorization code has an unreadable hash")
    return AuthorizationCode(
        code_hash=code_hash,
        client_id=client_id,
        user_id=user_id,
        redirect_uri=redirect_uri,
        scope=scope,
        code_challenge=code_challenge,
        nonce=nonce,
        # float(): a REAL column can hand back a whole number as an int.
        auth_time=float(auth_time),
        created_at=float(created_at),
        expires_at=float(expires_at),
        used_at=None if used_at is None else float(used_at),
        sid=sid,
    )


def code_values(c: AuthorizationCode) -> tuple[Any, ...]:
    """The values of :data:`CODE_COLUMNS` for a row holding ``c``."""
    return (
        c.code_hash,
        c.client_id,
        c.user_id,
        c.redirect_uri,
        c.scope,
        c.code_challenge,
        c.nonce,
        # float(): asyncpg wants a float for a double precision parameter.
        float(c.auth_time),
        float(c.created_at),
        float(c.expires_at),
        None if c.used_at is None else float(c.used_at),
        c.sid,
    )
