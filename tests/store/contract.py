"""The one conformance suite every store passes (spec §6, style.md §6).

A backend's test module subclasses :class:`StoreContract` and provides the
``store_factory`` fixture; every test here then runs against that backend::

    class TestSQLiteStore(StoreContract):
        supports_multiprocess = True

        @pytest.fixture
        def store_factory(self, tmp_path: Path) -> StoreFactory:
            return functools.partial(SQLiteStore, tmp_path / "keyfob.db")

Stores that several processes can share (``supports_multiprocess``) also run the
tests that race real OS processes against one database and kill one mid-life. Stores
that keep their data in an SQL database (``supports_sql``) also run the tests of that
database: its URL, its schema, a closed store, a refused write. A backend's test class
says what its database looks like (``migrations``, ``schema_query`` …) and gives the
suite a connection of its own to it (the ``raw_sql`` fixture).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest

from keyfob.core.authorization_codes import AuthorizationCode
from keyfob.core.clients import Client, hash_client_secret
from keyfob.core.keys import KeyRecord
from keyfob.core.models import (
    DeviceInfo,
    EventKind,
    RevokeReason,
    SecurityEvent,
    Session,
    TokenPair,
    User,
)
from keyfob.exceptions import (
    ClientExists,
    ConfigurationError,
    InvalidGrant,
    SessionRevoked,
    StoreIntegrityError,
    StoreUnavailable,
    TokenReused,
    UserExists,
)
from keyfob.manager import SessionManager
from keyfob.settings import Settings
from keyfob.store.protocol import RevokedSession, Store
from keyfob.store.webhook_records import (
    DeliveryStatus,
    WebhookEndpoint,
    WebhookMessage,
)
from keyfob.testing import FAST_SETTINGS, FrozenClock

from ._workers import Failed, WorkerPool

__all__ = ["RawSQL", "StoreContract", "StoreFactory"]

#: Makes a new, unopened store on the test's database; picklable for worker processes.
StoreFactory = Callable[[], Store]
#: Runs one SQL statement on a connection of the test's own to the store's database
#: (autocommit, like another program's) and returns the rows as tuples.
RawSQL = Callable[[str], Awaitable[list[tuple[Any, ...]]]]

#: Marks tests that need several store objects or processes on one database. They are
#: not collected for stores without ``supports_multiprocess`` (see tests/store/conftest.py):
#: such a test cannot apply to them, so it is left out rather than skipped.
shared_database = pytest.mark.shared_database
#: Marks tests of the SQL database under a store; likewise left out for stores without
#: ``supports_sql``.
sql_database = pytest.mark.sql_database

NOW = 1_800_000_000.0
IDLE_TTL = 7 * 86400.0
ABSOLUTE_TTL = 30 * 86400.0
SECRET_HASH = bytes(range(32))
OTHER_HASH = bytes(32)
PASSWORD = "correct horse battery staple"
#: Worker processes per race: enough to contend, few enough to start quickly.
PROCESSES = 3
ROUNDS = 4
#: How long another connection may take to see a revocation in revocation_marker().
MARKER_DEADLINE = 2.0


def make_session(
    sid: str = "s1", *, user_id: str = "u1", created_at: float = NOW, **changes: Any
) -> Session:
    """A live session created at ``created_at`` with the default lifetimes."""
    base = Session(
        sid=sid,
        user_id=user_id,
        client_id="keyfob",
        scope="openid profile",
        secret_hash=SECRET_HASH,
        counter=0,
        created_at=created_at,
        last_used_at=created_at,
        rotated_at=None,
        idle_expires_at=created_at + IDLE_TTL,
        absolute_expires_at=created_at + ABSOLUTE_TTL,
    )
    return dataclasses.replace(base, **changes)


def make_user(user_id: str, username: str, *, created_at: float = NOW) -> User:
    return User(
        id=user_id, username=username, password_hash=f"hash-of-{user_id}", created_at=created_at
    )


def make_key(kid: str, *, created_at: float = NOW, **changes: Any) -> KeyRecord:
    base = KeyRecord(
        kid=kid,
        alg="ES256",
        public_jwk=f'{{"kid": "{kid}", "kty": "EC"}}',
        private_encrypted=b"\x00\xffciphertext-of-" + kid.encode(),
        created_at=created_at,
        activates_at=created_at + 300,
    )
    return dataclasses.replace(base, **changes)


def make_client(client_id: str = "c1", *, created_at: float = NOW, **changes: Any) -> Client:
    """A confidential client_secret_basic client with two redirect URIs and two scopes."""
    base = Client(
        client_id=client_id,
        name=f"Client {client_id}",
        auth_method="client_secret_basic",
        redirect_uris=("https://app.example/cb", "http://127.0.0.1/cb"),
        grant_types=("authorization_code", "refresh_token"),
        scopes=("read", "write"),
        created_at=created_at,
        secret_hash=hash_client_secret("s3cret-" + client_id),
    )
    return dataclasses.replace(base, **changes)


#: (what is wrong, changes to the stored session, rotate() arguments that differ).
REFUSED_ROTATIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("counter-behind", {"counter": 3}, {"counter": 2}),
    ("counter-ahead", {"counter": 3}, {"counter": 4}),
    ("wrong-secret-hash", {}, {"secret_hash": OTHER_HASH}),
    ("revoked", {"revoked_at": NOW + 5, "revoked_reason": "logout"}, {}),
    ("idle-deadline-reached", {}, {"now": NOW + IDLE_TTL}),
    ("idle-deadline-passed", {}, {"now": NOW + IDLE_TTL + 1}),
    (
        "absolute-deadline-reached",
        {"absolute_expires_at": NOW + 100, "idle_expires_at": NOW + 200},
        {"now": NOW + 100},
    ),
    ("unknown-sid", {}, {"sid": "no-such-session"}),
    ("another-client", {}, {"client_id": "not-keyfob"}),
]


class ClientRegistryContract:
    """The client registry and the single-use record of client assertions."""

    async def test_client_round_trip(self, store: Store) -> None:
        """A registered client reads back exactly, secret hash and JWK Set included."""
        client = make_client()
        keyed = make_client(
            "c2",
            auth_method="private_key_jwt",
            secret_hash=None,
            jwks='{"keys": []}',
            require_pkce=False,
            first_party=True,
            redirect_uris=(),
            grant_types=("refresh_token",),
            scopes=(),
        )
        await store.create_client(client)
        await store.create_client(keyed)
        assert await store.get_client("c1") == client
        assert await store.get_client("c2") == keyed

    async def test_post_logout_redirect_uris_round_trip(self, store: Store) -> None:
        """A client's post-logout redirect URIs read back in order (migration 0006); a
        client registered without any has none."""
        uris = ("https://app.example/bye", "http://127.0.0.1/bye", "com.example.app:/bye")
        await store.create_client(make_client("c1", post_logout_redirect_uris=uris))
        await store.create_client(make_client("c2"))
        found = await store.get_client("c1")
        assert found is not None and found.post_logout_redirect_uris == uris
        plain = await store.get_client("c2")
        assert plain is not None and plain.post_logout_redirect_uris == ()
        assert [c.post_logout_redirect_uris for c in await store.list_clients()] == [uris, ()]

    async def test_unknown_client_is_none(self, store: Store) -> None:
        """get_client() of an id never registered is None."""
        assert await store.get_client("nobody") is None

    async def test_duplicate_client_id_is_refused(self, store: Store) -> None:
        """A taken client id is ClientExists and the first registration stays."""
        await store.create_client(make_client())
        with pytest.raises(ClientExists):
            await store.create_client(make_client(name="Impostor"))
        found = await store.get_client("c1")
        assert found is not None and found.name == "Client c1"

    async def test_list_clients_oldest_first(self, store: Store) -> None:
        """list_clients() orders by registration time, then id."""
        await store.create_client(make_client("b", created_at=NOW + 1))
        await store.create_client(make_client("z", created_at=NOW))
        await store.create_client(make_client("a", created_at=NOW + 1))
        assert [c.client_id for c in await store.list_clients()] == ["z", "a", "b"]

    async def test_delete_client(self, store: Store) -> None:
        """delete_client() removes the client once; its assertions go with it."""
        await store.create_client(make_client())
        assert await store.use_assertion_id("c1", "j1", expires_at=NOW + 60, now=NOW)
        assert await store.delete_client("c1") is True
        assert await store.get_client("c1") is None
        assert await store.delete_client("c1") is False
        await store.create_client(make_client())
        assert await store.use_assertion_id("c1", "j1", expires_at=NOW + 60, now=NOW)

    async def test_set_client_secret_hash(self, store: Store) -> None:
        """set_client_secret_hash() replaces the hash of an existing client only."""
        await store.create_client(make_client())
        new_hash = hash_client_secret("new")
        assert await store.set_client_secret_hash("c1", new_hash) is True
        found = await store.get_client("c1")
        assert found is not None and found.secret_hash == new_hash
        assert await store.set_client_secret_hash("nobody", new_hash) is False

    async def test_assertion_ids_are_single_use_until_they_expire(self, store: Store) -> None:
        """A jti is accepted once per client; again only after it expired."""
        await store.create_client(make_client())
        await store.create_client(make_client("c2"))
        assert await store.use_assertion_id("c1", "j", expires_at=NOW + 60, now=NOW)
        assert not await store.use_assertion_id("c1", "j", expires_at=NOW + 90, now=NOW + 30)
        assert await store.use_assertion_id("c2", "j", expires_at=NOW + 60, now=NOW)
        assert await store.use_assertion_id("c1", "j", expires_at=NOW + 120, now=NOW + 60)
        assert not await store.use_assertion_id("c1", "j", expires_at=NOW + 120, now=NOW + 61)

    async def test_concurrent_uses_of_one_assertion_have_one_winner(self, store: Store) -> None:
        """Of 20 coroutines recording one jti at once, exactly one gets True."""
        await store.create_client(make_client())
        results = await asyncio.gather(
            *(store.use_assertion_id("c1", "race", expires_at=NOW + 60, now=NOW) for _ in range(20))
        )
        assert results.count(True) == 1

    @shared_database
    async def test_another_store_sees_clients_and_used_assertions(
        self, store: Store, other_store: Store
    ) -> None:
        """A client registered (e.g. by the CLI) is seen by a running server's store, and
        an assertion used through one store is a replay through the other."""
        await store.create_client(make_client())
        assert await other_store.get_client("c1") == make_client()
        assert await store.use_assertion_id("c1", "j", expires_at=NOW + 60, now=NOW)
        assert not await other_store.use_assertion_id("c1", "j", expires_at=NOW + 60, now=NOW)


def make_code(
    code_hash: bytes = b"\x01" * 32,
    *,
    client_id: str = "c1",
    created_at: float = NOW,
    **changes: Any,
) -> AuthorizationCode:
    """An unused authorization code of ``client_id``, valid for 60 s."""
    base = AuthorizationCode(
        code_hash=code_hash,
        client_id=client_id,
        user_id="u1",
        redirect_uri="https://app.example/cb",
        scope="openid read",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        nonce="n-0S6_WzA2Mj",
        auth_time=created_at - 3.5,
        created_at=created_at,
        expires_at=created_at + 60,
    )
    return dataclasses.replace(base, **changes)


class AuthorizationCodeContract:
    """Authorization codes: kept as hashes, bound to a registered client, used once."""

    async def test_code_round_trip(self, store: Store) -> None:
        """A code reads back exactly, with or without a challenge and a nonce."""
        await store.create_client(make_client())
        code = make_code()
        bare = make_code(b"\x02" * 32, code_challenge=None, nonce=None, scope="")
        await store.create_authorization_code(code)
        await store.create_authorization_code(bare)
        assert await store.get_authorization_code(code.code_hash) == code
        assert await store.get_authorization_code(bare.code_hash) == bare
        assert await store.get_authorization_code(b"\x03" * 32) is None

    async def test_code_needs_a_registered_client_and_a_new_hash(self, store: Store) -> None:
        """A code of an unknown client, or with a hash taken, is StoreIntegrityError."""
        with pytest.raises(StoreIntegrityError):
            await store.create_authorization_code(make_code())
        await store.create_client(make_client())
        await store.create_authorization_code(make_code())
        with pytest.raises(StoreIntegrityError):
            await store.create_authorization_code(make_code(user_id="u2"))
        found = await store.get_authorization_code(make_code().code_hash)
        assert found is not None and found.user_id == "u1"

    async def test_a_code_is_used_once(self, store: Store) -> None:
        """The first use records when and by which session; later uses change nothing."""
        await store.create_client(make_client())
        code = make_code()
        await store.create_authorization_code(code)
        assert await store.use_authorization_code(code.code_hash, now=NOW + 1, sid="s1")
        assert not await store.use_authorization_code(code.code_hash, now=NOW + 2, sid="s2")
        assert not await store.use_authorization_code(code.code_hash, now=NOW + 3, sid=None)
        assert await store.get_authorization_code(code.code_hash) == dataclasses.replace(
            code, used_at=NOW + 1, sid="s1"
        )
        assert not await store.use_authorization_code(b"\x03" * 32, now=NOW, sid="s3")

    async def test_a_failed_presentation_uses_a_code_without_a_session(self, store: Store) -> None:
        """A use with no session (a failed exchange) spends the code all the same."""
        await store.create_client(make_client())
        await store.create_authorization_code(make_code())
        assert await store.use_authorization_code(make_code().code_hash, now=NOW + 1, sid=None)
        assert not await store.use_authorization_code(make_code().code_hash, now=NOW, sid="s1")
        found = await store.get_authorization_code(make_code().code_hash)
        assert found is not None and (found.used_at, found.sid) == (NOW + 1, None)

    async def test_concurrent_uses_of_one_code_have_one_winner(self, store: Store) -> None:
        """Of 20 coroutines using one code at once, exactly one gets True, and its sid
        is the one recorded."""
        await store.create_client(make_client())
        await store.create_authorization_code(make_code())
        results = await asyncio.gather(
            *(
                store.use_authorization_code(make_code().code_hash, now=NOW + 1, sid=f"s{i}")
                for i in range(20)
            )
        )
        assert results.count(True) == 1
        found = await store.get_authorization_code(make_code().code_hash)
        assert found is not None and found.sid == f"s{results.index(True)}"

    async def test_purge_deletes_codes_expired_before_a_time(self, store: Store) -> None:
        """purge_authorization_codes deletes at most ``limit`` codes that expired before
        ``expired_before``, used or not, and keeps the others."""
        await store.create_client(make_client())
        for i in range(5):
            await store.create_authorization_code(
                make_code(bytes([i]) * 32, created_at=NOW + 10 * i)
            )
        await store.use_authorization_code(bytes([0]) * 32, now=NOW + 1, sid="s0")
        # Codes 0-2 expired before NOW + 60 + 21 (at +60, +70, +80); 3 and 4 after.
        assert await store.purge_authorization_codes(expired_before=NOW + 81, limit=2) == 2
        assert await store.purge_authorization_codes(expired_before=NOW + 81, limit=2) == 1
        assert await store.purge_authorization_codes(expired_before=NOW + 81, limit=2) == 0
        for i in range(5):
            found = await store.get_authorization_code(bytes([i]) * 32)
            assert (found is None) == (i < 3), i

    async def test_removing_a_client_removes_its_codes(self, store: Store) -> None:
        """delete_client() takes the client's codes with it; other clients' stay."""
        await store.create_client(make_client())
        await store.create_client(make_client("c2"))
        await store.create_authorization_code(make_code())
        await store.create_authorization_code(make_code(b"\x02" * 32, client_id="c2"))
        assert await store.delete_client("c1")
        assert await store.get_authorization_code(make_code().code_hash) is None
        assert await store.get_authorization_code(b"\x02" * 32) is not None

    @shared_database
    async def test_a_code_is_used_once_across_stores(
        self, store: Store, other_store: Store
    ) -> None:
        """Two instances on one database racing to use one code: exactly one wins, and
        each sees the code (and the winner's session) the other recorded."""
        await store.create_client(make_client())
        await other_store.create_authorization_code(make_code())
        assert await store.get_authorization_code(make_code().code_hash) == make_code()
        results = await asyncio.gather(
            *(
                s.use_authorization_code(make_code().code_hash, now=NOW + 1, sid=f"s{i}")
                for i, s in enumerate([store, other_store] * 5)
            )
        )
        assert results.count(True) == 1
        winner = f"s{results.index(True)}"
        for s in (store, other_store):
            found = await s.get_authorization_code(make_code().code_hash)
            assert found is not None and found.sid == winner


class StoreContract(ClientRegistryContract, AuthorizationCodeContract):
    """Every behaviour of :class:`keyfob.store.Store` that keyfob relies on."""

    #: Whether separate store objects (and processes) can share one database.
    supports_multiprocess: ClassVar[bool] = False
    #: Whether the store keeps its data in an SQL database that it connects to.
    supports_sql: ClassVar[bool] = False
    #: The migrations ``migrate()`` applies to a fresh database, in order.
    migrations: ClassVar[list[str]] = []
    #: URLs the store's ``from_url`` refuses (one test each; tests/store/conftest.py).
    unusable_urls: ClassVar[tuple[str, ...]] = ()
    #: A query for the name of every table, index and trigger in the database.
    schema_query: ClassVar[str] = ""
    #: Names the first migration gives tables, indexes and triggers (``schema_query``).
    schema_objects: ClassVar[frozenset[str]] = frozenset()
    #: A statement that makes the database refuse a signing key with kid ``k2``.
    refuse_key_k2: ClassVar[str] = ""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Each backend's test class provides this."""
        raise NotImplementedError("a StoreContract subclass provides the store_factory fixture")

    @pytest.fixture
    def write_delays(self) -> list[tuple[Store, float]]:
        """Unopened stores made with various timeouts, and the max_write_delay of each;
        each backend's test class provides this."""
        raise NotImplementedError("a StoreContract subclass provides the write_delays fixture")

    @pytest.fixture
    def raw_sql(self) -> RawSQL:
        """A backend with ``supports_sql`` provides this."""
        raise NotImplementedError("a StoreContract subclass with supports_sql provides raw_sql")

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[Store]:
        store = store_factory()
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    @pytest.fixture
    async def other_store(self, store: Store, store_factory: StoreFactory) -> AsyncIterator[Store]:
        """A second store object on the same database (another connection)."""
        other = store_factory()
        await other.open()
        try:
            yield other
        finally:
            await other.close()

    # opening and migrations

    async def test_migrate_applies_each_migration_once(self, store_factory: StoreFactory) -> None:
        """migrate() on a fresh database applies every migration and then nothing more."""
        fresh = store_factory()
        try:
            assert await fresh.migrate() == self.migrations
            assert await fresh.migrate() == []
            await fresh.open()
            assert await fresh.migrate() == []
        finally:
            await fresh.close()

    async def test_open_and_close_are_idempotent(self, store_factory: StoreFactory) -> None:
        """Opening an open store and closing a closed store change nothing."""
        store = store_factory()
        await store.open()
        await store.open()
        await store.create_session(make_session())
        assert await store.count_sessions() == 1
        await store.close()
        await store.close()

    @shared_database
    async def test_stores_opening_a_fresh_database_migrate_it_once(
        self, store_factory: StoreFactory
    ) -> None:
        """Several store objects opening one fresh database at once: one of them migrates it."""
        stores = [store_factory() for _ in range(4)]
        try:
            applied = await asyncio.gather(*(s.migrate() for s in stores))
            assert sorted(applied, key=len) == [[], [], [], self.migrations]
            await asyncio.gather(*(s.open() for s in stores))
        finally:
            await asyncio.gather(*(s.close() for s in stores))

    @shared_database
    async def test_processes_opening_a_fresh_database_migrate_it_once(
        self, store_factory: StoreFactory
    ) -> None:
        """Several processes opening one fresh database at once: the schema is created once."""
        with WorkerPool(store_factory, PROCESSES, open_store=False) as pool:
            applied = pool.race_all(("migrate",))
            assert sorted(applied, key=len) == [[], [], self.migrations], applied
            assert pool.race_all(("counter", "nobody")) == [None, None, None]

    @shared_database
    async def test_reopening_keeps_the_data_and_applies_nothing(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        """A second store opened on the same database sees the data; no migration is pending."""
        await store.create_session(make_session())
        await store.close()
        reopened = store_factory()
        try:
            await reopened.open()
            assert await reopened.migrate() == []
            assert await reopened.get_session("s1") == make_session()
        finally:
            await reopened.close()

    # the database under the store

    def test_max_write_delay_is_a_non_negative_float(self, store_factory: StoreFactory) -> None:
        """Every store says how long one of its writes can be in flight: a float, never < 0."""
        delay = store_factory().max_write_delay
        assert isinstance(delay, float)
        assert delay >= 0

    def test_max_write_delay_follows_the_timeouts(
        self, write_delays: list[tuple[Store, float]]
    ) -> None:
        """A store works its max_write_delay out from the timeouts it was made with."""
        assert write_delays
        for store, expected in write_delays:
            assert isinstance(store.max_write_delay, float), store
            assert store.max_write_delay == expected, store

    @sql_database
    def test_unusable_urls_are_refused(
        self, store_factory: StoreFactory, unusable_url: str
    ) -> None:
        """Another scheme, a missing database, a bad option: ConfigurationError at once."""
        with pytest.raises(ConfigurationError):
            type(store_factory()).from_url(unusable_url)  # type: ignore[attr-defined]

    @sql_database
    async def test_open_creates_the_schema(self, store: Store, raw_sql: RawSQL) -> None:
        """open() on a fresh database creates every table, index and trigger and records
        the migrations."""
        names = {name for (name,) in await raw_sql(self.schema_query)}
        assert self.schema_objects <= names
        ledger = await raw_sql("SELECT version, name FROM keyfob_migrations ORDER BY version")
        assert ledger == [(i + 1, name) for i, name in enumerate(self.migrations)]

    @sql_database
    async def test_a_newer_schema_is_refused(
        self, store_factory: StoreFactory, raw_sql: RawSQL
    ) -> None:
        """A database migrated by a newer keyfob is refused, not guessed at."""
        store = store_factory()
        await store.open()
        await store.close()
        await raw_sql("INSERT INTO keyfob_migrations VALUES (9999, '9999_from_the_future', 0)")
        newer = store_factory()
        with pytest.raises(StoreIntegrityError, match="9999_from_the_future"):
            await newer.open()
        await newer.close()

    @sql_database
    async def test_a_closed_store_is_unavailable(self, store_factory: StoreFactory) -> None:
        """Every operation on a closed (or never opened) store raises StoreUnavailable."""
        store = store_factory()
        with pytest.raises(StoreUnavailable):
            await store.get_session("s1")
        await store.open()
        await store.close()
        with pytest.raises(StoreUnavailable):
            await store.count_sessions()
        with pytest.raises(StoreUnavailable):
            await store.save_keys([make_key("k1")])

    @sql_database
    async def test_saving_keys_is_all_or_nothing(self, store: Store, raw_sql: RawSQL) -> None:
        """A refused key in a save_keys batch leaves no key of the batch behind."""
        await raw_sql(self.refuse_key_k2)
        with pytest.raises(StoreIntegrityError):
            await store.save_keys([make_key("k1"), make_key("k2")])
        assert await store.load_keys() == []
        await store.save_keys([make_key("k1")])
        assert [k.kid for k in await store.load_keys()] == ["k1"]

    # sessions: create and read

    async def test_session_round_trip(self, store: Store) -> None:
        """A created session reads back equal in every field, device included."""
        session = make_session(
            device=DeviceInfo(user_agent="Mozilla/5.0 (X11; Linux) — ünïcode", ip="2001:db8::1"),
            rotated_at=NOW + 1.5,
            last_used_at=NOW + 1.5,
            counter=7,
        )
        await store.create_session(session)
        assert await store.get_session("s1") == session

    async def test_revoked_session_round_trip(self, store: Store) -> None:
        """The revocation time and reason of a session read back as written."""
        session = make_session(revoked_at=NOW + 0.25, revoked_reason=RevokeReason.ADMIN.value)
        await store.create_session(session)
        got = await store.get_session("s1")
        assert got == session
        assert got is not None and got.revoked

    async def test_a_sessions_sign_in_time_survives_rotation(self, store: Store) -> None:
        """auth_time (migration 0007), a sign-in before the session began, reads back and
        is kept by each rotation, so every id_token names the same sign-in."""
        session = make_session(auth_time=NOW - 42.5)
        await store.create_session(session)
        assert await store.get_session("s1") == session
        rotated = await store.rotate(
            "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 60, idle_ttl=IDLE_TTL
        )
        assert rotated is not None and rotated.auth_time == NOW - 42.5
        assert rotated.signed_in_at == NOW - 42.5
        assert make_session().signed_in_at == NOW  # none given: the session's creation

    async def test_duplicate_sid_is_refused(self, store: Store) -> None:
        """Creating a session with a taken sid raises StoreIntegrityError, overwriting nothing."""
        await store.create_session(make_session("s1"))
        with pytest.raises(StoreIntegrityError):
            await store.create_session(make_session("s1", user_id="u2"))
        assert await store.get_session("s1") == make_session("s1")

    async def test_unknown_session_is_none(self, store: Store) -> None:
        """get_session of an unknown sid returns None."""
        assert await store.get_session("nope") is None

    async def test_count_sessions(self, store: Store) -> None:
        """count_sessions counts every row, live, revoked or expired."""
        assert await store.count_sessions() == 0
        await store.create_session(make_session("a"))
        await store.create_session(make_session("b", revoked_at=NOW, revoked_reason="logout"))
        await store.create_session(make_session("c", created_at=NOW - ABSOLUTE_TTL * 2))
        assert await store.count_sessions() == 3

    # sessions: rotate

    async def test_rotate_moves_counter_and_times(self, store: Store) -> None:
        """rotate increments the counter and sets rotated_at, last_used_at and the idle deadline
        to when it applied: the time asked for, plus however long the write took to apply."""
        original = make_session(device=DeviceInfo("ua", "10.0.0.1"))
        await store.create_session(original)
        now = NOW + 3600.5
        rotated = await store.rotate(
            "s1", counter=0, secret_hash=SECRET_HASH, now=now, idle_ttl=IDLE_TTL
        )
        assert rotated is not None and rotated.rotated_at is not None
        applied = rotated.rotated_at
        assert now <= applied < now + 1.0
        expected = dataclasses.replace(
            original,
            counter=1,
            rotated_at=applied,
            last_used_at=pytest.approx(applied, abs=1e-3),
            idle_expires_at=pytest.approx(applied + IDLE_TTL, abs=1e-3),
        )
        assert rotated == expected
        assert await store.get_session("s1") == expected

    async def test_rotate_caps_the_idle_deadline_at_the_absolute_one(self, store: Store) -> None:
        """The idle deadline a rotation sets never passes the absolute deadline."""
        # Kept alive by refreshes until a minute before the absolute deadline.
        await store.create_session(make_session(idle_expires_at=NOW + ABSOLUTE_TTL - 30))
        now = NOW + ABSOLUTE_TTL - 60
        rotated = await store.rotate(
            "s1", counter=0, secret_hash=SECRET_HASH, now=now, idle_ttl=IDLE_TTL
        )
        assert rotated is not None
        assert rotated.idle_expires_at == NOW + ABSOLUTE_TTL
        assert rotated.absolute_expires_at == NOW + ABSOLUTE_TTL

    async def test_rotations_follow_each_other(self, store: Store) -> None:
        """Each rotation accepts only the counter the previous one produced."""
        await store.create_session(make_session())
        for counter in range(5):
            now = NOW + counter + 1
            stale = await store.rotate(
                "s1", counter=counter - 1, secret_hash=SECRET_HASH, now=now, idle_ttl=IDLE_TTL
            )
            assert stale is None
            rotated = await store.rotate(
                "s1", counter=counter, secret_hash=SECRET_HASH, now=now, idle_ttl=IDLE_TTL
            )
            assert rotated is not None
            assert rotated.counter == counter + 1
        final = await store.get_session("s1")
        assert final is not None and final.counter == 5

    @pytest.mark.parametrize(
        ("changes", "arguments"),
        [pytest.param(c, a, id=name) for name, c, a in REFUSED_ROTATIONS],
    )
    async def test_refused_rotation_returns_none_and_changes_nothing(
        self, store: Store, changes: dict[str, Any], arguments: dict[str, Any]
    ) -> None:
        """A rotation that does not match in every condition returns None and writes nothing."""
        session = make_session(**changes)
        await store.create_session(session)
        call: dict[str, Any] = {
            "sid": "s1",
            "counter": session.counter,
            "secret_hash": SECRET_HASH,
            "now": NOW + 10,
            "idle_ttl": IDLE_TTL,
        }
        call.update(arguments)
        sid = call.pop("sid")
        assert await store.rotate(sid, **call) is None
        assert await store.get_session("s1") == session
        assert await store.count_sessions() == 1

    async def test_rotate_for_the_sessions_client(self, store: Store) -> None:
        """rotate() bound to the client the session was issued to matches like an unbound one."""
        await store.create_session(make_session())
        rotated = await store.rotate(
            "s1",
            counter=0,
            secret_hash=SECRET_HASH,
            now=NOW + 1,
            idle_ttl=IDLE_TTL,
            client_id="keyfob",
        )
        assert rotated is not None and rotated.counter == 1

    async def test_concurrent_rotations_have_exactly_one_winner(self, store: Store) -> None:
        """Of 50 coroutines rotating the same counter at once, exactly one gets the session."""
        await store.create_session(make_session())
        results = await asyncio.gather(
            *(
                store.rotate(
                    "s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL
                )
                for _ in range(50)
            )
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].counter == 1
        final = await store.get_session("s1")
        assert final is not None and final.counter == 1

    @shared_database
    async def test_stores_sharing_a_database_have_exactly_one_winner(
        self, store: Store, other_store: Store, store_factory: StoreFactory
    ) -> None:
        """Coroutines rotating through three connections to one database: one winner per counter."""
        third = store_factory()
        await third.open()
        try:
            stores = [store, other_store, third]
            await store.create_session(make_session())
            for counter in range(ROUNDS):
                results = await asyncio.gather(
                    *(
                        s.rotate(
                            "s1",
                            counter=counter,
                            secret_hash=SECRET_HASH,
                            now=NOW + counter + 1,
                            idle_ttl=IDLE_TTL,
                        )
                        for _ in range(10)
                        for s in stores
                    )
                )
                assert [r.counter for r in results if r is not None] == [counter + 1]
        finally:
            await third.close()

    @shared_database
    async def test_processes_racing_rotate_have_exactly_one_winner(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        """OS processes rotating one counter at the same moment: one winner in total, each round."""
        await store.create_session(make_session())
        with WorkerPool(store_factory, PROCESSES) as pool:
            for counter in range(ROUNDS):
                results = pool.race_all(
                    ("rotate", "s1", counter, SECRET_HASH, NOW + counter + 1, IDLE_TTL)
                )
                assert not [r for r in results if isinstance(r, Failed)], results
                assert sorted(results, key=lambda r: r is None) == [counter + 1] + [None] * (
                    PROCESSES - 1
                )
        final = await store.get_session("s1")
        assert final is not None and final.counter == ROUNDS

    @shared_database
    async def test_acknowledged_rotation_survives_sigkill(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        """A rotation a process acknowledged is in the database after that process is SIGKILLed."""
        await store.create_session(make_session())
        with WorkerPool(store_factory, 1) as pool:
            assert pool.race_all(("rotate", "s1", 0, SECRET_HASH, NOW + 1, IDLE_TTL)) == [1]
            pool.kill(0)
        await store.close()
        reopened = store_factory()
        try:
            await reopened.open()
            survivor = await reopened.get_session("s1")
            assert survivor is not None
            assert survivor.counter == 1
            assert survivor.rotated_at == pytest.approx(NOW + 1, abs=1.0)
        finally:
            await reopened.close()

    # sessions: revoke

    async def test_revoke_session_only_once(self, store: Store) -> None:
        """revoke_session returns the revoked session the first time and None after."""
        await store.create_session(make_session())
        revoked = await store.revoke_session("s1", now=NOW + 9, reason="logout")
        assert revoked == make_session(revoked_at=NOW + 9, revoked_reason="logout")
        assert await store.revoke_session("s1", now=NOW + 10, reason="admin") is None
        assert await store.get_session("s1") == revoked

    async def test_revoke_session_respects_the_user(self, store: Store) -> None:
        """revoke_session with a user_id leaves another user's session alone."""
        await store.create_session(make_session(user_id="alice"))
        assert await store.revoke_session("s1", now=NOW, reason="x", user_id="mallory") is None
        assert await store.get_session("s1") == make_session(user_id="alice")
        revoked = await store.revoke_session("s1", now=NOW, reason="user_revoked", user_id="alice")
        assert revoked is not None and revoked.revoked_reason == "user_revoked"

    async def test_revoke_unknown_session_is_none(self, store: Store) -> None:
        """Revoking a sid that does not exist returns None."""
        assert await store.revoke_session("nope", now=NOW, reason="logout") is None

    async def test_revoke_user_sessions(self, store: Store) -> None:
        """revoke_user_sessions revokes the user's unrevoked sessions but one, oldest first."""
        for i, sid in enumerate(["a", "b", "keep", "c"]):
            await store.create_session(make_session(sid, user_id="alice", created_at=NOW + i))
        await store.create_session(
            make_session("old", user_id="alice", revoked_at=NOW, revoked_reason="logout")
        )
        await store.create_session(make_session("bob-1", user_id="bob"))
        revoked = await store.revoke_user_sessions(
            "alice", now=NOW + 50, reason="logout_all", except_sid="keep"
        )
        assert revoked == ["a", "b", "c"]
        for sid in revoked:
            s = await store.get_session(sid)
            assert s is not None and (s.revoked_at, s.revoked_reason) == (NOW + 50, "logout_all")
        old = await store.get_session("old")
        assert old is not None and (old.revoked_at, old.revoked_reason) == (NOW, "logout")
        keep = await store.get_session("keep")
        bob = await store.get_session("bob-1")
        assert keep is not None and not keep.revoked
        assert bob is not None and not bob.revoked
        assert await store.revoke_user_sessions("alice", now=NOW + 60, reason="x") == ["keep"]
        assert await store.revoke_user_sessions("alice", now=NOW + 70, reason="x") == []

    async def test_revocation_marker_is_stable_without_revocations(self, store: Store) -> None:
        """revocation_marker() gives equal values while nothing is revoked."""
        await store.create_session(make_session())
        first = store.revocation_marker()
        await store.rotate("s1", counter=0, secret_hash=SECRET_HASH, now=NOW + 1, idle_ttl=IDLE_TTL)
        assert store.revocation_marker() == first
        assert store.revocation_marker() == first

    @shared_database
    async def test_revocation_marker_moves_when_another_store_revokes(
        self, store: Store, other_store: Store
    ) -> None:
        """A revocation through another connection changes this store's revocation_marker()."""
        await store.create_session(make_session("a"))
        await store.create_session(make_session("b"))
        before = store.revocation_marker()
        await other_store.revoke_session("a", now=NOW, reason="logout")
        after_one = await marker_change(store, before)
        await other_store.revoke_user_sessions("u1", now=NOW, reason="logout_all")
        assert await marker_change(store, after_one) != before

    # sessions: queries and purge

    async def test_list_sessions_live_only_newest_first(self, store: Store) -> None:
        """list_sessions returns the user's live sessions, newest first, and nothing else."""
        now = NOW + 100
        await store.create_session(make_session("old", user_id="alice", created_at=NOW))
        await store.create_session(make_session("new", user_id="alice", created_at=NOW + 20))
        await store.create_session(make_session("mid", user_id="alice", created_at=NOW + 10))
        await store.create_session(
            make_session("revoked", user_id="alice", revoked_at=NOW + 1, revoked_reason="logout")
        )
        await store.create_session(make_session("idle", user_id="alice", idle_expires_at=now))
        await store.create_session(
            make_session("absolute", user_id="alice", absolute_expires_at=now - 1)
        )
        await store.create_session(make_session("bobs", user_id="bob", created_at=NOW + 30))
        listed = await store.list_sessions("alice", now=now)
        assert [s.sid for s in listed] == ["new", "mid", "old"]
        assert listed[0] == make_session("new", user_id="alice", created_at=NOW + 20)
        assert await store.list_sessions("nobody", now=now) == []

    async def test_revoked_since(self, store: Store) -> None:
        """revoked_since lists sessions revoked since a time and still before their absolute end."""
        now = NOW + 1000
        await store.create_session(make_session("live"))
        await store.create_session(make_session("early", revoked_at=NOW + 10, revoked_reason="x"))
        await store.create_session(make_session("at", revoked_at=NOW + 500, revoked_reason="x"))
        await store.create_session(make_session("late", revoked_at=NOW + 900, revoked_reason="x"))
        await store.create_session(
            make_session("ended", revoked_at=NOW + 600, revoked_reason="x", absolute_expires_at=now)
        )
        got = await store.revoked_since(NOW + 500, now=now)
        assert sorted(got, key=lambda r: r.sid) == [
            RevokedSession("at", NOW + 500, NOW + ABSOLUTE_TTL),
            RevokedSession("late", NOW + 900, NOW + ABSOLUTE_TTL),
        ]

    async def test_purge_deletes_expired_and_long_revoked_in_batches(self, store: Store) -> None:
        """purge_sessions deletes at most `limit` dead sessions per call and keeps live ones."""
        now = NOW + 10 * 86400
        doomed = {
            "idle-expired": make_session("idle-expired", idle_expires_at=now),
            "absolute-expired": make_session("absolute-expired", absolute_expires_at=now - 1),
            "long-revoked": make_session("long-revoked", revoked_at=NOW, revoked_reason="x"),
            "old": make_session("old", created_at=NOW - 40 * 86400),
            "expired-and-revoked": make_session(
                "expired-and-revoked", idle_expires_at=NOW, revoked_at=NOW, revoked_reason="x"
            ),
        }
        kept = {
            "live": make_session("live", idle_expires_at=now + 1),
            "recently-revoked": make_session(
                "recently-revoked", idle_expires_at=now + 1, revoked_at=now - 10, revoked_reason="x"
            ),
        }
        for s in [*doomed.values(), *kept.values()]:
            await store.create_session(s)
        revoked_before = now - 86400
        counts = [
            await store.purge_sessions(now=now, revoked_before=revoked_before, limit=2)
            for _ in range(4)
        ]
        assert counts == [2, 2, 1, 0]
        assert await store.count_sessions() == len(kept)
        for sid in doomed:
            assert await store.get_session(sid) is None
        for sid, session in kept.items():
            assert await store.get_session(sid) == session

    async def test_purge_follows_an_end_a_rotation_moved(self, store: Store) -> None:
        """A rotation moves a session's end across midnight UTC, forward (a refresh) or
        back (an idle TTL shortened since the last one): the purge takes the session at
        its new end, not before. (PostgreSQL's purge finds sessions by the day of their
        end, which a rotation must keep up to date: migration 0004.)"""
        midnight = (NOW // 86400 + 2) * 86400
        await store.create_session(make_session("later", idle_expires_at=midnight - 60))
        await store.create_session(make_session("sooner", idle_expires_at=midnight + 3600))
        later = await store.rotate(
            "later", counter=0, secret_hash=SECRET_HASH, now=midnight - 120, idle_ttl=3600
        )
        sooner = await store.rotate(
            "sooner", counter=0, secret_hash=SECRET_HASH, now=midnight - 600, idle_ttl=300
        )
        assert later is not None and later.idle_expires_at > midnight
        assert sooner is not None and sooner.idle_expires_at < midnight

        def purge(now: float) -> Awaitable[int]:
            return store.purge_sessions(now=now, revoked_before=NOW, limit=10)

        assert await purge(sooner.idle_expires_at - 1) == 0
        assert await purge(sooner.idle_expires_at) == 1
        assert await store.get_session("sooner") is None
        assert await purge(later.idle_expires_at - 1) == 0
        assert await store.get_session("later") == later
        assert await purge(later.idle_expires_at) == 1
        assert await store.count_sessions() == 0

    async def test_purge_with_nothing_to_do(self, store: Store) -> None:
        """purge_sessions on live sessions deletes nothing."""
        await store.create_session(make_session())
        assert await store.purge_sessions(now=NOW + 1, revoked_before=NOW, limit=100) == 0
        assert await store.count_sessions() == 1

    # users

    async def test_user_round_trip(self, store: Store) -> None:
        """A created user reads back by id and, case-insensitively, by name."""
        user = make_user("u1", "Alice")
        await store.create_user(user)
        assert await store.get_user("u1") == user
        assert await store.get_user_by_name("Alice") == user
        assert await store.get_user_by_name("aLICE") == user
        assert await store.get_user("u2") is None
        assert await store.get_user_by_name("bob") is None

    @pytest.mark.parametrize(
        ("first", "second"),
        [("alice", "ALICE"), ("Straße", "STRASSE"), ("ǅemal", "ǆemal")],
    )
    async def test_duplicate_username_is_refused(
        self, store: Store, first: str, second: str
    ) -> None:
        """A username equal to a taken one after case folding raises UserExists, writes nothing."""
        await store.create_user(make_user("u1", first))
        with pytest.raises(UserExists):
            await store.create_user(make_user("u2", second))
        assert await store.get_user("u2") is None
        assert await store.get_user_by_name(second) == make_user("u1", first)

    async def test_duplicate_user_id_is_refused(self, store: Store) -> None:
        """A second user with a taken id raises StoreIntegrityError and overwrites nothing."""
        await store.create_user(make_user("u1", "alice"))
        with pytest.raises(StoreIntegrityError):
            await store.create_user(make_user("u1", "bob"))
        assert await store.get_user("u1") == make_user("u1", "alice")

    async def test_set_password_hash(self, store: Store) -> None:
        """set_password_hash replaces the hash of that user only; an unknown id is ignored."""
        await store.create_user(make_user("u1", "alice"))
        await store.create_user(make_user("u2", "bob"))
        await store.set_password_hash("u1", "new-hash")
        await store.set_password_hash("nobody", "other-hash")
        alice = await store.get_user("u1")
        assert alice is not None and alice.password_hash == "new-hash"
        assert await store.get_user("u2") == make_user("u2", "bob")
        assert await store.get_user("nobody") is None

    async def test_list_users_pages(self, store: Store) -> None:
        """list_users pages through users ordered by creation time, then name."""
        users = [
            make_user("u3", "carol", created_at=NOW + 2),
            make_user("u1", "bob", created_at=NOW),
            make_user("u2", "alice", created_at=NOW),
            make_user("u4", "dave", created_at=NOW + 3),
        ]
        for user in users:
            await store.create_user(user)
        names = [u.username for u in await store.list_users()]
        assert names == ["alice", "bob", "carol", "dave"]
        assert [u.username for u in await store.list_users(limit=2)] == ["alice", "bob"]
        assert [u.username for u in await store.list_users(limit=2, offset=2)] == ["carol", "dave"]
        assert await store.list_users(limit=2, offset=4) == []

    # events

    async def test_events_newest_first(self, store: Store) -> None:
        """Recorded events come back newest first with increasing ids, every field intact."""
        first = SecurityEvent(
            kind=EventKind.LOGIN_OK, at=NOW, user_id="u1", sid="s1", ip="192.0.2.1"
        )
        second = SecurityEvent(
            kind=EventKind.REUSE_DETECTED, at=NOW + 1, user_id="u1", sid="s1", detail="older_token"
        )
        third = SecurityEvent(kind=EventKind.KEY_ROTATED, at=NOW + 2, detail="kid=k1")
        for event in (first, second, third):
            await store.record_event(event)
        listed = await store.list_events()
        assert all(e.id is not None for e in listed)
        ids = [e.id or 0 for e in listed]
        assert ids == sorted(set(ids), reverse=True)
        assert [dataclasses.replace(e, id=None) for e in listed] == [third, second, first]

    async def test_events_filters(self, store: Store) -> None:
        """list_events filters by kind, user and session, alone or together."""
        events = [
            SecurityEvent(kind=EventKind.LOGIN_OK, at=NOW, user_id="alice", sid="a1"),
            SecurityEvent(kind=EventKind.LOGIN_FAILED, at=NOW + 1, user_id="alice"),
            SecurityEvent(kind=EventKind.LOGIN_OK, at=NOW + 2, user_id="bob", sid="b1"),
            SecurityEvent(kind=EventKind.REVOKE, at=NOW + 3, user_id="alice", sid="a1"),
            SecurityEvent(kind=EventKind.LOGIN_FAILED, at=NOW + 4, detail="unknown user"),
        ]
        for event in events:
            await store.record_event(event)

        async def ats(**filters: Any) -> list[float]:
            return [e.at for e in await store.list_events(**filters)]

        assert await ats(kind=EventKind.LOGIN_OK) == [NOW + 2, NOW]
        assert await ats(user_id="alice") == [NOW + 3, NOW + 1, NOW]
        assert await ats(sid="a1") == [NOW + 3, NOW]
        assert await ats(kind=EventKind.LOGIN_FAILED, user_id="alice") == [NOW + 1]
        assert await ats(kind=EventKind.KEY_ROTATED) == []
        assert await ats(user_id="carol") == []

    async def test_events_page_backwards(self, store: Store) -> None:
        """limit and before_id page through the log from newest to oldest."""
        for i in range(7):
            await store.record_event(
                SecurityEvent(kind=EventKind.LOGIN_OK, at=NOW + i, user_id="u")
            )
        seen: list[float] = []
        before: int | None = None
        while page := await store.list_events(limit=3, before_id=before, user_id="u"):
            assert len(page) <= 3
            seen.extend(e.at for e in page)
            before = page[-1].id
        assert seen == [NOW + i for i in reversed(range(7))]
        assert await store.list_events(limit=0) == []

    # signing keys

    async def test_keys_round_trip(self, store: Store) -> None:
        """Saved key records load back equal, oldest first."""
        newer = make_key("k2", created_at=NOW + 100)
        older = make_key("k1", retired_at=NOW + 150, expires_at=NOW + 1200)
        await store.save_keys([newer, older])
        assert await store.load_keys() == [older, newer]

    async def test_saving_a_key_again_replaces_it(self, store: Store) -> None:
        """save_keys with a known kid replaces that record rather than adding one."""
        await store.save_keys([make_key("k1"), make_key("k2", created_at=NOW + 1)])
        retired = make_key("k1", retired_at=NOW + 50, expires_at=NOW + 1000)
        await store.save_keys([retired])
        assert await store.load_keys() == [retired, make_key("k2", created_at=NOW + 1)]

    async def test_delete_keys(self, store: Store) -> None:
        """delete_keys removes the named keys and ignores unknown kids."""
        await store.save_keys([make_key("k1"), make_key("k2", created_at=NOW + 1)])
        await store.delete_keys(["k1", "unknown"])
        assert await store.load_keys() == [make_key("k2", created_at=NOW + 1)]
        await store.delete_keys([])
        await store.save_keys([])
        assert len(await store.load_keys()) == 1

    # the manager on this store (spec §3: exactly one winner, idempotent within grace)

    async def start_manager(
        self, store: Store, settings: Settings, clock: FrozenClock
    ) -> SessionManager:
        manager = SessionManager(settings, store, clock=clock)
        await manager.start()
        return manager

    async def login(self, manager: SessionManager, username: str = "alice") -> TokenPair:
        if await manager.store.get_user_by_name(username) is None:
            await manager.register(username, PASSWORD)
        return await manager.login(username, PASSWORD, device=DeviceInfo("pytest", "127.0.0.1"))

    async def test_concurrent_refreshes_within_grace_get_one_successor(self, store: Store) -> None:
        """50 coroutines refreshing one token: one rotation, and all get the identical successor."""
        clock = FrozenClock(NOW)
        manager = await self.start_manager(store, FAST_SETTINGS, clock)
        pair = await self.login(manager)
        for round_ in range(ROUNDS):
            clock.advance(1)
            results = await asyncio.gather(
                *(manager.refresh(pair.refresh_token.value) for _ in range(50))
            )
            assert len({r.refresh_token.value for r in results}) == 1
            session = await store.get_session(pair.session.sid)
            assert session is not None and session.counter == round_ + 1
            pair = results[0]
        final = await store.get_session(pair.session.sid)
        assert final is not None and not final.revoked

    async def test_concurrent_refreshes_without_grace_have_one_winner(self, store: Store) -> None:
        """With grace off, of 50 concurrent refreshes one succeeds and the rest are refused."""
        clock = FrozenClock(NOW)
        manager = await self.start_manager(store, FAST_SETTINGS.replace(grace=0), clock)
        pair = await self.login(manager)
        clock.advance(1)
        results = await asyncio.gather(
            *(manager.refresh(pair.refresh_token.value) for _ in range(50)),
            return_exceptions=True,
        )
        assert_one_success_then_reuse(results)
        session = await store.get_session(pair.session.sid)
        assert session is not None
        assert session.counter == pair.session.counter + 1
        assert session.revoked_reason == RevokeReason.REUSE_DETECTED.value

    @shared_database
    async def test_processes_refreshing_within_grace_get_one_successor(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        """Processes and coroutines refreshing one token at once all get the identical successor."""
        clock = FrozenClock(NOW)
        manager = await self.start_manager(store, FAST_SETTINGS, clock)
        pair = await self.login(manager)
        with WorkerPool(store_factory, PROCESSES) as pool:
            pool.race_all(("start_manager", FAST_SETTINGS, clock.now()))
            for round_ in range(ROUNDS):
                now = clock.advance(1)
                token = pair.refresh_token.value
                remote, local = await asyncio.gather(
                    asyncio.to_thread(pool.race_all, ("refresh", token, now)),
                    asyncio.gather(*(manager.refresh(token) for _ in range(10))),
                )
                assert not [r for r in remote if isinstance(r, Failed)], remote
                successors = set(remote) | {p.refresh_token.value for p in local}
                assert successors == {local[0].refresh_token.value}
                session = await store.get_session(pair.session.sid)
                assert session is not None and session.counter == round_ + 1
                pair = local[0]

    @shared_database
    async def test_processes_refreshing_without_grace_have_one_winner(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        """With grace off, processes and coroutines refreshing one token: one success in total."""
        clock = FrozenClock(NOW)
        settings = FAST_SETTINGS.replace(grace=0)
        manager = await self.start_manager(store, settings, clock)
        with WorkerPool(store_factory, PROCESSES) as pool:
            pool.race_all(("start_manager", settings, clock.now()))
            for _ in range(ROUNDS):
                pair = await self.login(manager)
                now = clock.advance(1)
                token = pair.refresh_token.value
                remote, local = await asyncio.gather(
                    asyncio.to_thread(pool.race_all, ("refresh", token, now)),
                    asyncio.gather(
                        *(manager.refresh(token) for _ in range(10)), return_exceptions=True
                    ),
                )
                assert_one_success_then_reuse([*local, *remote])
                session = await store.get_session(pair.session.sid)
                assert session is not None
                assert session.counter == pair.session.counter + 1
                assert session.revoked_reason == RevokeReason.REUSE_DETECTED.value

    # webhooks: endpoints and the outbox

    async def test_webhook_endpoints_round_trip(self, store: Store) -> None:
        """An endpoint comes back as added; the list is oldest first; a taken id is refused."""
        first = make_endpoint("ep_a", created_at=NOW, event_types=("session.revoked",))
        second = make_endpoint("ep_b", created_at=NOW + 1, enabled=False, description="SIEM")
        await store.add_webhook_endpoint(second)
        await store.add_webhook_endpoint(first)
        assert await store.get_webhook_endpoint("ep_a") == first
        assert await store.get_webhook_endpoint("ep_b") == second
        assert await store.get_webhook_endpoint("ep_missing") is None
        assert await store.list_webhook_endpoints() == [first, second]
        with pytest.raises(StoreIntegrityError):
            await store.add_webhook_endpoint(first)

    async def test_enabling_and_removing_an_endpoint(self, store: Store) -> None:
        """Disabling and enabling is remembered; removing takes the deliveries with it."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        assert await store.set_webhook_endpoint_enabled("ep_a", False)
        found = await store.get_webhook_endpoint("ep_a")
        assert found is not None
        assert not found.enabled
        assert await store.set_webhook_endpoint_enabled("ep_a", True)
        assert not await store.set_webhook_endpoint_enabled("ep_missing", True)
        await store.enqueue_webhook(webhook_message("m1"), now=NOW)
        assert len(await store.list_webhook_deliveries()) == 1
        assert await store.remove_webhook_endpoint("ep_a")
        assert not await store.remove_webhook_endpoint("ep_a")
        assert await store.list_webhook_endpoints() == []
        assert await store.list_webhook_deliveries() == []

    async def test_enqueue_reaches_enabled_subscribed_endpoints_only(self, store: Store) -> None:
        """A message gets one pending delivery per enabled endpoint subscribed to its type."""
        await store.add_webhook_endpoint(make_endpoint("ep_yes", event_types=("a.b", "c.d")))
        await store.add_webhook_endpoint(make_endpoint("ep_other", event_types=("a.bc",)))
        await store.add_webhook_endpoint(make_endpoint("ep_off", enabled=False))
        assert await store.enqueue_webhook(webhook_message("m1", "a.b"), now=NOW) == 1
        assert await store.enqueue_webhook(webhook_message("m2", "x.y"), now=NOW) == 0
        [delivery] = await store.list_webhook_deliveries()
        assert (delivery.endpoint_id, delivery.message_id, delivery.event_type) == (
            "ep_yes",
            "m1",
            "a.b",
        )
        assert delivery.payload == webhook_message("m1", "a.b").payload
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.attempts == 0
        assert delivery.created_at == NOW
        assert delivery.next_attempt_at == NOW
        assert delivery.lease is None

    async def test_enqueue_for_one_endpoint_ignores_its_subscriptions(self, store: Store) -> None:
        """Naming an endpoint (keyfob webhooks test) reaches it whatever it subscribed to."""
        await store.add_webhook_endpoint(make_endpoint("ep_a", event_types=("a.b",)))
        await store.add_webhook_endpoint(make_endpoint("ep_b", event_types=("webhook.test",)))
        added = await store.enqueue_webhook(
            webhook_message("t1", "webhook.test"), now=NOW, endpoint_id="ep_a"
        )
        assert added == 1
        assert [d.endpoint_id for d in await store.list_webhook_deliveries()] == ["ep_a"]

    async def test_a_claim_leases_due_deliveries_once(self, store: Store) -> None:
        """Due deliveries are claimed oldest first under a lease; nobody else gets them until
        it runs out, and then the old lease can no longer record an attempt."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        await store.enqueue_webhook(webhook_message("m1"), now=NOW)
        await store.enqueue_webhook(webhook_message("m2"), now=NOW + 1)
        assert (
            await store.claim_webhook_deliveries(now=NOW - 1, limit=10, lease="early", lease_for=60)
            == []
        )
        claimed = await store.claim_webhook_deliveries(
            now=NOW + 1, limit=1, lease="L1", lease_for=60
        )
        assert [(d.message_id, d.lease) for d in claimed] == [("m1", "L1")]
        rest = await store.claim_webhook_deliveries(now=NOW + 2, limit=10, lease="L2", lease_for=60)
        assert [d.message_id for d in rest] == ["m2"]
        assert (
            await store.claim_webhook_deliveries(now=NOW + 30, limit=10, lease="L3", lease_for=60)
            == []
        )
        again = await store.claim_webhook_deliveries(
            now=NOW + 61, limit=10, lease="L4", lease_for=60
        )
        assert [(d.message_id, d.lease) for d in again] == [("m1", "L4")]
        assert not await finish(store, claimed[0].id, "L1", DeliveryStatus.DELIVERED, now=NOW + 62)
        assert await finish(store, claimed[0].id, "L4", DeliveryStatus.DELIVERED, now=NOW + 62)

    async def test_a_claim_can_ask_for_one_message(self, store: Store) -> None:
        """claim(message_id=...) leaves the other due deliveries where they are."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        await store.enqueue_webhook(webhook_message("m1"), now=NOW)
        await store.enqueue_webhook(webhook_message("m2"), now=NOW)
        claimed = await store.claim_webhook_deliveries(
            now=NOW, limit=10, lease="L", lease_for=60, message_id="m2"
        )
        assert [d.message_id for d in claimed] == ["m2"]
        others = await store.claim_webhook_deliveries(now=NOW, limit=10, lease="M", lease_for=60)
        assert [d.message_id for d in others] == ["m1"]

    async def test_disabled_endpoints_deliveries_wait(self, store: Store) -> None:
        """A disabled endpoint's deliveries are not claimed; enabled again, they are."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        await store.enqueue_webhook(webhook_message("m1"), now=NOW)
        await store.set_webhook_endpoint_enabled("ep_a", False)
        assert (
            await store.claim_webhook_deliveries(now=NOW, limit=10, lease="L", lease_for=60) == []
        )
        await store.set_webhook_endpoint_enabled("ep_a", True)
        claimed = await store.claim_webhook_deliveries(now=NOW, limit=10, lease="L", lease_for=60)
        assert [d.message_id for d in claimed] == ["m1"]

    async def test_finishing_an_attempt_records_it(self, store: Store) -> None:
        """An attempt counts, keeps its answer, and schedules (or ends) the delivery."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        await store.enqueue_webhook(webhook_message("m1"), now=NOW)
        [d] = await store.claim_webhook_deliveries(now=NOW, limit=10, lease="L", lease_for=60)
        assert await store.finish_webhook_attempt(
            d.id,
            lease="L",
            status=DeliveryStatus.PENDING,
            now=NOW + 1,
            next_attempt_at=NOW + 6,
            status_code=500,
            error="HTTP 500",
        )
        [logged] = await store.list_webhook_deliveries()
        assert (logged.status, logged.attempts, logged.last_status_code, logged.last_error) == (
            DeliveryStatus.PENDING,
            1,
            500,
            "HTTP 500",
        )
        assert (logged.last_attempt_at, logged.next_attempt_at, logged.lease) == (
            NOW + 1,
            NOW + 6,
            None,
        )
        assert (
            await store.claim_webhook_deliveries(now=NOW + 5, limit=10, lease="M", lease_for=60)
            == []
        )
        [d] = await store.claim_webhook_deliveries(now=NOW + 6, limit=10, lease="M", lease_for=60)
        assert d.attempts == 1
        assert await store.finish_webhook_attempt(
            d.id,
            lease="M",
            status=DeliveryStatus.FAILED,
            now=NOW + 7,
            next_attempt_at=None,
            status_code=None,
            error="no answer within 10 s",
        )
        [logged] = await store.list_webhook_deliveries()
        assert (logged.status, logged.attempts, logged.last_status_code) == (
            DeliveryStatus.FAILED,
            2,
            None,
        )
        assert logged.next_attempt_at is None
        assert (
            await store.claim_webhook_deliveries(now=NOW + 99, limit=10, lease="N", lease_for=60)
            == []
        )
        assert not await finish(store, d.id, "M", DeliveryStatus.DELIVERED, now=NOW + 8)

    async def test_the_delivery_log_filters_and_pages(self, store: Store) -> None:
        """Newest first, by endpoint and status, before an id, never showing a lease."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        await store.add_webhook_endpoint(make_endpoint("ep_b"))
        for i in range(3):
            await store.enqueue_webhook(webhook_message(f"m{i}"), now=NOW + i)
        everything = await store.list_webhook_deliveries()
        assert [(d.message_id, d.endpoint_id) for d in everything] == [
            (m, e) for m in ("m2", "m1", "m0") for e in ("ep_b", "ep_a")
        ]
        assert [d.id for d in everything] == sorted((d.id for d in everything), reverse=True)
        claimed = await store.claim_webhook_deliveries(now=NOW, limit=10, lease="L", lease_for=60)
        await finish(store, claimed[0].id, "L", DeliveryStatus.DELIVERED, now=NOW)
        by_b = await store.list_webhook_deliveries(endpoint_id="ep_b", limit=2)
        assert [d.message_id for d in by_b] == ["m2", "m1"]
        page = await store.list_webhook_deliveries(before_id=everything[1].id, limit=2)
        assert [d.id for d in page] == [d.id for d in everything[2:4]]
        delivered = await store.list_webhook_deliveries(status=DeliveryStatus.DELIVERED)
        assert [d.id for d in delivered] == [claimed[0].id]
        pending = await store.list_webhook_deliveries(status=DeliveryStatus.PENDING)
        assert len(pending) == 5
        assert all(d.lease is None for d in pending)

    async def test_purging_old_finished_deliveries(self, store: Store) -> None:
        """Only delivered or failed deliveries whose last attempt is old enough go."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        for i in range(4):
            await store.enqueue_webhook(webhook_message(f"m{i}"), now=NOW)
        ds = await store.claim_webhook_deliveries(now=NOW, limit=10, lease="L", lease_for=60)
        await finish(store, ds[0].id, "L", DeliveryStatus.DELIVERED, now=NOW)
        await finish(store, ds[1].id, "L", DeliveryStatus.FAILED, now=NOW)
        await finish(store, ds[2].id, "L", DeliveryStatus.DELIVERED, now=NOW + 100)
        assert await store.purge_webhook_deliveries(finished_before=NOW + 50, limit=1) == 1
        assert await store.purge_webhook_deliveries(finished_before=NOW + 50, limit=10) == 1
        assert await store.purge_webhook_deliveries(finished_before=NOW + 50, limit=10) == 0
        left = {d.id for d in await store.list_webhook_deliveries()}
        assert left == {ds[2].id, ds[3].id}

    @shared_database
    async def test_concurrent_claims_never_share_a_delivery(
        self, store: Store, other_store: Store
    ) -> None:
        """Two store objects claiming at once (two instances) split the deliveries."""
        await store.add_webhook_endpoint(make_endpoint("ep_a"))
        for i in range(40):
            await store.enqueue_webhook(webhook_message(f"m{i}"), now=NOW)
        rounds = await asyncio.gather(
            *(
                s.claim_webhook_deliveries(now=NOW, limit=3, lease=f"L{i}", lease_for=60)
                for i in range(10)
                for s in (store, other_store)
            )
        )
        ids = [d.id for claimed in rounds for d in claimed]
        assert len(ids) == len(set(ids)) == 40


def make_endpoint(
    endpoint_id: str,
    *,
    created_at: float = NOW,
    event_types: tuple[str, ...] = ("a.b",),
    enabled: bool = True,
    description: str = "",
) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=endpoint_id,
        url=f"https://hooks.example/{endpoint_id}",
        secret_sealed=b"sealed:" + endpoint_id.encode(),
        event_types=event_types,
        created_at=created_at,
        enabled=enabled,
        description=description,
    )


def webhook_message(message_id: str, event_type: str = "a.b") -> WebhookMessage:
    return WebhookMessage(
        message_id=message_id,
        event_type=event_type,
        # Non-ASCII text, as a body may carry: it must come back byte for byte.
        payload=json.dumps(
            {"type": event_type, "data": {"id": message_id, "text": "caf\u00e9 \u2713"}},
            ensure_ascii=False,
        ),
    )


async def finish(
    store: Store, delivery_id: int, lease: str, status: DeliveryStatus, *, now: float
) -> bool:
    return await store.finish_webhook_attempt(
        delivery_id,
        lease=lease,
        status=status,
        now=now,
        next_attempt_at=None,
        status_code=200 if status is DeliveryStatus.DELIVERED else None,
        error="",
    )


async def marker_change(store: Store, old: object) -> object:
    """The store's new revocation_marker(), waiting for a store that learns of it late.

    A store told by its server (PostgreSQL NOTIFY) may take a moment; a store that reads
    the marker from the database (SQLite) has it at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MARKER_DEADLINE
    while (new := store.revocation_marker()) == old:
        assert loop.time() < deadline, f"revocation_marker() still {old!r}"
        await asyncio.sleep(0.005)
    return new


def assert_one_success_then_reuse(results: list[Any]) -> None:
    """One refresh succeeded; the others were refused, and reuse was detected.

    ``results`` mixes this process's outcomes (a TokenPair or the exception) with a
    worker's (the successor's text or :class:`Failed`).
    """
    successes = [r for r in results if isinstance(r, TokenPair | str)]
    refusals = [
        r.error if isinstance(r, Failed) else type(r).__name__
        for r in results
        if not isinstance(r, TokenPair | str)
    ]
    assert len(successes) == 1, results
    assert all(isinstance(r, InvalidGrant) for r in results if isinstance(r, BaseException)), (
        results
    )
    # The first refused caller detects the reuse and revokes the family; the later ones
    # may find it revoked already.
    assert set(refusals) <= {TokenReused.__name__, SessionRevoked.__name__}, refusals
    assert TokenReused.__name__ in refusals, refusals
