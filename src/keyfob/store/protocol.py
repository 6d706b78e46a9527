"""The ``Store`` protocol, composed of small protocols (one per kind of record).

Every operation is an atomic domain operation: a refresh is :meth:`SessionStore.rotate`,
one conditional update, never a read followed by a write (style.md §6). Every backend
translates its driver's errors into :class:`keyfob.exceptions.StoreUnavailable`, so
"store down → 503, nothing half-rotated" depends on one type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..core.authorization_codes import AuthorizationCode
from ..core.clients import Client
from ..core.keys import KeyRecord
from ..core.models import EventKind, SecurityEvent, Session, User
from .webhook_records import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookMessage

__all__ = [
    "AuthorizationCodeStore",
    "ClientStore",
    "EventStore",
    "KeyStore",
    "RevokedSession",
    "SessionStore",
    "Store",
    "UserStore",
    "WebhookOutbox",
    "WebhookStore",
]


@dataclass(frozen=True, slots=True)
class RevokedSession:
    """A revocation, as other processes learn of it (for the revoked-sid set)."""

    sid: str
    revoked_at: float
    #: After this no access token of the session can be valid anyway.
    absolute_expires_at: float


class SessionStore(Protocol):
    async def create_session(self, session: Session) -> None:
        """Insert a new session; a taken sid raises :class:`StoreIntegrityError`."""

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
        """Atomically move the session from ``counter`` to ``counter + 1``.

        Only when the session exists with that counter and secret hash (and was issued
        to ``client_id``, when given), is not revoked, and is before both deadlines at
        ``now``. Sets ``rotated_at`` and
        ``last_used_at`` to ``now`` and the idle deadline to
        ``min(now + idle_ttl, absolute_expires_at)``. Returns the updated session, or
        ``None`` when nothing matched (then nothing changed). Of concurrent callers
        with the same counter, exactly one gets a session.
        """

    async def get_session(self, sid: str) -> Session | None: ...

    async def revoke_session(
        self, sid: str, *, now: float, reason: str, user_id: str | None = None
    ) -> Session | None:
        """Revoke one live session (of ``user_id``, when given). Returns it if this call
        revoked it; ``None`` if it did not exist, was not the user's, or was revoked already."""

    async def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, except_sid: str | None = None
    ) -> list[str]:
        """Revoke every unrevoked session of the user (but one); return the sids revoked."""

    async def list_sessions(self, user_id: str, *, now: float) -> list[Session]:
        """The user's live sessions (not revoked, not expired), newest first."""

    async def revoked_since(self, since: float, *, now: float) -> list[RevokedSession]:
        """Sessions revoked at or after ``since`` whose absolute deadline is still ahead."""

    async def purge_sessions(self, *, now: float, revoked_before: float, limit: int) -> int:
        """Delete up to ``limit`` sessions that expired, or were revoked before
        ``revoked_before``; return how many went."""

    async def count_sessions(self) -> int: ...

    def revocation_marker(self) -> object:
        """A cheap, non-blocking value that changes when another process may have revoked
        a session since the last call (e.g. SQLite's ``PRAGMA data_version``, a counter
        bumped by PostgreSQL ``NOTIFY``). Safe to call on the event loop for every
        protected request; stores with no other writers return a constant."""


class UserStore(Protocol):
    async def create_user(self, user: User) -> None:
        """Insert a user: :class:`UserExists` if the username is taken (case-insensitively),
        :class:`StoreIntegrityError` if the id is."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_name(self, username: str) -> User | None: ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[User]: ...


class EventStore(Protocol):
    async def record_event(self, event: SecurityEvent) -> None: ...

    async def list_events(
        self,
        *,
        limit: int = 100,
        kind: EventKind | None = None,
        user_id: str | None = None,
        sid: str | None = None,
        before_id: int | None = None,
    ) -> list[SecurityEvent]:
        """Newest first; ``before_id`` pages backwards."""


class KeyStore(Protocol):
    async def load_keys(self) -> list[KeyRecord]: ...

    async def save_keys(self, records: Sequence[KeyRecord]) -> None:
        """Insert or replace the given key records in one transaction."""

    async def delete_keys(self, kids: Sequence[str]) -> None: ...


class ClientStore(Protocol):
    """The OAuth client registry (RFC 6749 §2) and the single-use record of client
    assertions (RFC 7523 §3 item 7)."""

    async def create_client(self, client: Client) -> None:
        """Register a client: :class:`ClientExists` if the id is taken."""

    async def get_client(self, client_id: str) -> Client | None: ...

    async def list_clients(self) -> list[Client]:
        """Every registered client, oldest first."""

    async def delete_client(self, client_id: str) -> bool:
        """Remove a client (and its remembered assertions); False if there was none."""

    async def set_client_secret_hash(self, client_id: str, secret_hash: bytes) -> bool:
        """Replace a client's secret hash; False if there is no such client."""

    async def use_assertion_id(
        self, client_id: str, jti: str, *, expires_at: float, now: float
    ) -> bool:
        """Record that an assertion ``jti`` of the client was used; True the first time.

        False when the same ``jti`` was recorded before and has not expired at ``now``
        (a replay). Of concurrent callers with one ``jti``, exactly one gets True.
        Records that expired are forgotten.
        """


class AuthorizationCodeStore(Protocol):
    """Authorization codes (RFC 6749 §4.1), kept as hashes, each usable once."""

    async def create_authorization_code(self, code: AuthorizationCode) -> None:
        """Insert a new, unused code; :class:`StoreIntegrityError` if its hash is taken
        or its client is not registered."""

    async def get_authorization_code(self, code_hash: bytes) -> AuthorizationCode | None:
        """The code with this hash, used or not, expired or not, until it is purged."""

    async def use_authorization_code(
        self, code_hash: bytes, *, now: float, sid: str | None
    ) -> bool:
        """Mark the code used at ``now`` by the session ``sid`` (``None`` when the
        presentation issued none); True only if this call did, i.e. the code existed and
        was unused. Of concurrent callers, across processes, exactly one gets True; the
        first use's ``used_at`` and ``sid`` are never overwritten."""

    async def purge_authorization_codes(self, *, expired_before: float, limit: int) -> int:
        """Delete up to ``limit`` codes that expired before ``expired_before``; return
        how many went."""


class WebhookOutbox(Protocol):
    async def enqueue_webhook(
        self, message: WebhookMessage, *, now: float, endpoint_id: str | None = None
    ) -> int:
        """Add a pending delivery of ``message`` for every enabled endpoint subscribed to
        its event type (or for ``endpoint_id`` alone, subscribed or not), due at ``now``,
        in one statement; return how many were added."""


class WebhookStore(WebhookOutbox, Protocol):
    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Insert an endpoint; a taken id raises :class:`StoreIntegrityError`."""

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every endpoint, oldest first."""

    async def set_webhook_endpoint_enabled(self, endpoint_id: str, enabled: bool) -> bool:
        """Enable or disable an endpoint; False if there is none with that id."""

    async def remove_webhook_endpoint(self, endpoint_id: str) -> bool:
        """Delete an endpoint and its deliveries; False if there is none with that id."""

    async def claim_webhook_deliveries(
        self,
        *,
        now: float,
        limit: int,
        lease: str,
        lease_for: float,
        message_id: str | None = None,
    ) -> list[WebhookDelivery]:
        """Claim up to ``limit`` pending deliveries due at ``now`` of enabled endpoints that
        no live lease holds (only those of ``message_id``, when given), oldest due first:
        each gets the lease token ``lease`` until ``now + lease_for``. Of concurrent
        callers, across processes, each delivery goes to one; a lease that ran out (its
        holder died) lets the delivery be claimed again."""

    async def finish_webhook_attempt(
        self,
        delivery_id: int,
        *,
        lease: str,
        status: DeliveryStatus,
        now: float,
        next_attempt_at: float | None,
        status_code: int | None,
        error: str,
    ) -> bool:
        """Record one attempt of a claimed delivery (attempts + 1) and release the lease.
        False, and nothing changed, if ``lease`` no longer holds it."""

    async def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[WebhookDelivery]:
        """The delivery log, newest first; ``before_id`` pages backwards."""

    async def purge_webhook_deliveries(self, *, finished_before: float, limit: int) -> int:
        """Delete up to ``limit`` delivered or failed deliveries whose last attempt was
        before ``finished_before``; return how many went."""


@runtime_checkable
class Store(
    SessionStore,
    UserStore,
    EventStore,
    KeyStore,
    ClientStore,
    AuthorizationCodeStore,
    WebhookStore,
    Protocol,
):
    """Everything keyfob persists. Obtain one with :func:`keyfob.store.open_store`."""

    #: The URL scheme this store serves (``memory``, ``sqlite``, ``postgresql``).
    scheme: str

    @property
    def max_write_delay(self) -> float:
        """The longest a write can take, in seconds, between its caller reading the clock
        and the write becoming visible to other readers (0 when a write is visible at
        once; ``inf`` when nothing bounds it).

        Each store works it out from its own timeouts. A reader that asks for what was
        written since its last read (:meth:`revoked_since`) looks this much further back,
        for writes that were stamped before that read but committed after it.
        """

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of those applied."""

    async def close(self) -> None: ...
