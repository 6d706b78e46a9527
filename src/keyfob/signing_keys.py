"""The issuer's signing keys as the store keeps them: load, rotate, publish (spec §3 item 6).

The plan of a rotation is pure (:func:`keyfob.core.keys.plan_rotation`); this module
carries it out: it saves the new key and the retirements, purges keys whose last token has
expired, and hands the new key set to whoever verifies (``on_change``). Keys are encrypted
at rest under a key derived from the deployment secret; keys encrypted under an earlier
secret stay readable after the secret is rotated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .core.clock import Clock
from .core.keys import KeyRecord, KeySet, SigningKey, load_key, plan_rotation, purge_expired
from .core.models import EventKind
from .events import EventLog
from .exceptions import ConfigurationError
from .settings import Settings
from .store.protocol import KeyStore

__all__ = ["SigningKeys"]


class SigningKeys:
    """The key set in use, kept in step with the store."""

    __slots__ = (
        "_clock",
        "_events",
        "_keks",
        "_on_change",
        "_settings",
        "_store",
        "key_set",
        "loaded_at",
    )

    def __init__(
        self,
        store: KeyStore,
        events: EventLog,
        *,
        keks: Sequence[bytes],
        settings: Settings,
        clock: Clock,
        on_change: Callable[[KeySet], None],
    ) -> None:
        self._store = store
        self._events = events
        #: Key-encryption keys, newest first: the first encrypts, all decrypt.
        self._keks = tuple(keks)
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self.key_set = KeySet([])
        #: When the keys were last loaded from the store (``-inf``: never).
        self.loaded_at = float("-inf")

    def records(self) -> list[KeyRecord]:
        """The keys in use (public parts and times; nothing secret)."""
        return [k.record for k in self.key_set.keys]

    def jwks(self) -> dict[str, object]:
        """The public keys to publish at ``/.well-known/jwks.json``."""
        return self.key_set.jwks(self._clock.now())

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms keys are kept for: the access tokens', then the id tokens' if
        it differs (each has its own keys, rotated together)."""
        settings = self._settings
        return tuple(dict.fromkeys((settings.signing_alg, settings.id_token_alg)))

    def signing_key(self, now: float, alg: str | None = None) -> SigningKey:
        """The key that signs at ``now`` with ``alg`` (default: the access tokens')."""
        return self.key_set.signing_key(now, alg or self._settings.signing_alg)

    async def ensure_key(self) -> None:
        """Load the keys, and create a key for each algorithm that has none signing now
        (first boot, or an algorithm newly configured)."""
        await self.reload()
        now = self._clock.now()
        missing = [alg for alg in self.algorithms if self.key_set.needs_key(now, alg)]
        if missing:
            await self.rotate(only=missing)

    async def reload(self) -> None:
        """Load the keys from the store (after a rotation by another instance)."""
        self._install(await self._store.load_keys())

    async def rotate(self, *, only: Sequence[str] | None = None) -> list[KeyRecord]:
        """Publish a new key for each algorithm (or those of ``only``); each signs after
        ``key_publish_delay`` (the first key of an algorithm: at once). Returns the new
        keys, the access tokens' first."""
        await self.reload()
        now = self._clock.now()
        settings = self._settings
        plan = plan_rotation(
            self.key_set,
            algs=self.algorithms,
            only=only,
            now=now,
            kek=self._keks[0],
            publish_delay=settings.key_publish_delay,
            access_ttl=settings.access_ttl,
            leeway=settings.leeway,
        )
        new_records = [key.record for key in plan.new_keys]
        await self._store.save_keys([*new_records, *plan.retire])
        records = await self._store.load_keys()
        expired = purge_expired(records, now)
        if expired:
            await self._store.delete_keys(expired)
            records = [r for r in records if r.kid not in expired]
        self._install(records)
        for record in new_records:
            await self._events.record(
                EventKind.KEY_ROTATED, now, detail=f"kid={record.kid} alg={record.alg}"
            )
        return new_records

    def _install(self, records: Iterable[KeyRecord]) -> None:
        self.key_set = KeySet([self._decrypt(r) for r in records])
        self.loaded_at = self._clock.now()
        self._on_change(self.key_set)

    def _decrypt(self, record: KeyRecord) -> SigningKey:
        last: ConfigurationError | None = None
        # Keys encrypted under an earlier deployment secret stay readable after rotation.
        for kek in self._keks:
            try:
                return load_key(record, kek=kek)
            except ConfigurationError as exc:
                last = exc
        assert last is not None
        raise ConfigurationError(
            f"signing key {record.kid} cannot be decrypted with the deployment secret: "
            "was KEYFOB_SECRET changed without keeping the old one in previous_secrets?"
        ) from last
