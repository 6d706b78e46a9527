"""The store-free Verifier, and the manager's parts it is wired to.

A Verifier is what a service that only checks access tokens holds: keys handed in, no
store, no settings object. The manager fills the auth server's own Verifier from the store.
"""

from __future__ import annotations

import pytest

from keyfob import SessionManager
from keyfob.core.access_tokens import AccessTokenSigner
from keyfob.core.jwk import PublicKeySet
from keyfob.core.keys import KeySet, derive_kek, generate_key
from keyfob.exceptions import AccessTokenRevoked, BadSignature, ConfigurationError
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore
from keyfob.verifier import Verifier

ISS = "https://auth.example"
AUD = "https://api.example"
TTL = 900.0
LEEWAY = 30.0


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def keys(clock: FrozenClock) -> KeySet:
    now = clock.now()
    return KeySet([generate_key("ES256", now=now, activates_at=now, kek=derive_kek(b"s" * 32))])


def _token(keys: KeySet, clock: FrozenClock, sid: str = "sid-1") -> str:
    signer = AccessTokenSigner(issuer=ISS, audience=AUD, ttl=TTL)
    now = clock.now()
    return signer.sign(
        keys.signing_key(now), sub="user-1", sid=sid, client_id="web", scope="read", now=now
    )


def _verifier(clock: FrozenClock, keys: KeySet | PublicKeySet | None = None) -> Verifier:
    return Verifier(
        issuer=ISS, audience=AUD, keys=keys, leeway=LEEWAY, max_token_lifetime=TTL, clock=clock
    )


def test_a_verifier_needs_only_keys_issuer_and_audience(clock: FrozenClock, keys: KeySet) -> None:
    """Keys from the issuer's JWKS and no store are all it takes to verify a token."""
    verifier = _verifier(clock, PublicKeySet.from_jwks(keys.jwks(clock.now())))
    principal = verifier.verify_access_token(_token(keys, clock))
    assert (principal.user_id, principal.sid, principal.scopes) == ("user-1", "sid-1", {"read"})


async def test_the_fresh_check_of_a_plain_verifier_is_the_local_check(
    clock: FrozenClock, keys: KeySet
) -> None:
    """With keys and revocations handed in there is nothing to pull before verifying."""
    verifier = _verifier(clock, keys)
    token = _token(keys, clock)
    assert await verifier.verify_access_token_fresh(token) == verifier.verify_access_token(token)


def test_a_revoked_session_is_refused_until_its_tokens_cannot_be_valid(
    clock: FrozenClock, keys: KeySet
) -> None:
    """A revocation is remembered for the token lifetime plus leeway, then forgotten."""
    verifier = _verifier(clock, keys)
    verifier.remember_revoked("sid-1", clock.now())
    with pytest.raises(AccessTokenRevoked):
        verifier.verify_access_token(_token(keys, clock))
    assert verifier.verify_access_token(_token(keys, clock, sid="sid-2")).sid == "sid-2"
    clock.advance(TTL + LEEWAY)
    verifier.forget_stale_revocations()
    assert len(verifier.revoked) == 0


def test_new_keys_empty_the_cache_so_a_withdrawn_key_stops_at_once(
    clock: FrozenClock, keys: KeySet
) -> None:
    """A token verified (and cached) under a key is refused once that key is withdrawn."""
    verifier = _verifier(clock, keys)
    token = _token(keys, clock)
    verifier.verify_access_token(token)
    verifier.use_keys(KeySet([]))
    with pytest.raises(BadSignature):
        verifier.verify_access_token(token)


async def test_a_manager_without_an_issuer_administers_but_does_not_sign(
    clock: FrozenClock,
) -> None:
    """Admin work needs no issuer; signing and verifying say what is missing."""
    settings = FAST_SETTINGS.replace(issuer="", audience="")
    async with SessionManager(settings, MemoryStore(), clock=clock) as manager:
        user = await manager.register("alice", "correct horse battery staple")
        assert await manager.list_users() == [user]
        assert await manager.revoke_user_sessions(user.id) == []
        with pytest.raises(ConfigurationError, match="KEYFOB_ISSUER"):
            await manager.login("alice", "correct horse battery staple")
        with pytest.raises(ConfigurationError, match="KEYFOB_ISSUER"):
            manager.verify_access_token("x.y.z")


async def test_the_manager_hands_revocations_and_keys_to_its_verifier(
    clock: FrozenClock,
) -> None:
    """A revocation through the manager and a key rotation both reach its Verifier."""
    async with SessionManager(FAST_SETTINGS, MemoryStore(), clock=clock) as manager:
        await manager.register("alice", "correct horse battery staple")
        pair = await manager.login("alice", "correct horse battery staple")
        await manager.rotate_signing_key()
        published = manager.jwks()["keys"]
        assert isinstance(published, list)
        assert {record.kid for record in manager.signing_keys.records()} == {
            jwk["kid"] for jwk in published
        }
        assert manager.verifier.verify_access_token(pair.access_token).sid == pair.session.sid
        await manager.revoke_session(pair.session.sid)
        assert manager.verifier.revoked.is_revoked(pair.session.sid, clock.now())
