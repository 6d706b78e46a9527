"""The manager's OpenID Connect side: a key per algorithm (KEYFOB_ID_TOKEN_ALG beside
KEYFOB_SIGNING_ALG), mint_id_token, userinfo and id_token hints."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt as jrfc_jwt
from joserfc.jwk import KeySet as JoseKeySet

from keyfob import SessionManager
from keyfob.core.id_tokens import IdTokenHint, at_hash
from keyfob.core.models import Principal, Session
from keyfob.exceptions import ConfigurationError, PermissionDenied
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from .conftest import PASSWORD

TWO_ALGS = FAST_SETTINGS.replace(signing_alg="ES256", id_token_alg="RS256")


def jose_keys(manager: SessionManager) -> JoseKeySet:
    return JoseKeySet.import_key_set(manager.jwks())


def algs(manager: SessionManager, now: float) -> list[tuple[str, str]]:
    """(alg, state) of every key, sorted."""
    return sorted(
        (r.alg, "signing" if r.can_sign(now) else "not signing")
        for r in manager.signing_keys.records()
    )


async def test_a_key_for_each_algorithm_from_the_first_start(clock: FrozenClock) -> None:
    """ES256 signs access tokens, RS256 id tokens; the JWKS has both."""
    async with SessionManager(TWO_ALGS, MemoryStore(), clock=clock) as manager:
        assert algs(manager, clock.now()) == [("ES256", "signing"), ("RS256", "signing")]
        user = await manager.register("alice", PASSWORD)
        pair = await manager.issue(user.id, client_id="rp", scope="openid")
        token = manager.mint_id_token(
            pair.session, nonce="n1", auth_time=clock.now() - 5, access_token=pair.access_token
        )
        keys = jose_keys(manager)
        assert (
            jrfc_jwt.decode(pair.access_token, keys, algorithms=["ES256"]).header["alg"] == "ES256"
        )
        decoded = jrfc_jwt.decode(token, keys, algorithms=["RS256"])
        assert decoded.claims["nonce"] == "n1"
        assert decoded.claims["at_hash"] == at_hash(pair.access_token, "RS256")
        assert decoded.claims["auth_time"] == int(clock.now() - 5)
        assert decoded.claims["exp"] == int(clock.now() + TWO_ALGS.access_ttl)


async def test_one_key_when_both_algorithms_agree(clock: FrozenClock) -> None:
    """id_token_alg equal to signing_alg: one key signs both kinds of token."""
    settings = FAST_SETTINGS.replace(signing_alg="Ed25519", id_token_alg="Ed25519")
    async with SessionManager(settings, MemoryStore(), clock=clock) as manager:
        (record,) = manager.signing_keys.records()
        pair = await manager.issue("user-1", client_id="rp", scope="openid")
        token = manager.mint_id_token(
            pair.session, nonce=None, auth_time=clock.now(), access_token=pair.access_token
        )
        assert json.loads(record.public_jwk)["alg"] == "Ed25519"
        for jws in (token, pair.access_token):
            assert (
                jrfc_jwt.decode(jws, jose_keys(manager), algorithms=["Ed25519"]).header["kid"]
                == record.kid
            )


async def test_a_new_id_token_algorithm_adds_its_key_and_keeps_the_other(
    clock: FrozenClock,
) -> None:
    """Upgrading a deployment that had one ES256 key: the next start adds an RS256 key,
    signing at once, and leaves the ES256 key signing as before."""
    store = MemoryStore()
    async with SessionManager(FAST_SETTINGS, store, clock=clock) as before:
        (es256,) = before.signing_keys.records()
    clock.advance(60)
    async with SessionManager(TWO_ALGS, store, clock=clock) as after:
        assert algs(after, clock.now()) == [("ES256", "signing"), ("RS256", "signing")]
        assert after.signing_keys.signing_key(clock.now()).kid == es256.kid
        assert [r.retired_at for r in after.signing_keys.records() if r.kid == es256.kid] == [None]


async def test_rotation_renews_both_algorithms(clock: FrozenClock) -> None:
    """rotate_signing_keys publishes a new key per algorithm, access tokens' first; each
    signs after the publish delay, the old ones until then."""
    async with SessionManager(TWO_ALGS, MemoryStore(), clock=clock) as manager:
        old = {r.alg: r.kid for r in manager.signing_keys.records()}
        new = await manager.rotate_signing_keys()
        assert [r.alg for r in new] == ["ES256", "RS256"]
        now = clock.now()
        for record in new:
            assert record.activates_at == now + TWO_ALGS.key_publish_delay
            assert manager.signing_keys.signing_key(now, record.alg).kid == old[record.alg]
        clock.advance(TWO_ALGS.key_publish_delay)
        for record in new:
            assert manager.signing_keys.signing_key(clock.now(), record.alg).kid == record.kid
        single = await manager.rotate_signing_key()
        assert single.alg == "ES256"
        assert len({r.kid for r in manager.signing_keys.records()}) == 6


async def test_mint_id_token_needs_an_issuer(clock: FrozenClock) -> None:
    """Without an issuer there is nothing to put in iss: a configuration error."""
    session = Session(
        sid="s",
        user_id="u",
        client_id="rp",
        scope="openid",
        secret_hash=b"h" * 32,
        counter=0,
        created_at=clock.now(),
        last_used_at=clock.now(),
        rotated_at=None,
        idle_expires_at=clock.now() + 60,
        absolute_expires_at=clock.now() + 60,
    )
    async with SessionManager(FAST_SETTINGS.replace(issuer=""), MemoryStore(), clock=clock) as m:
        with pytest.raises(ConfigurationError, match="issuer"):
            m.mint_id_token(session, nonce=None, auth_time=clock.now(), access_token="a.b.c")


async def test_userinfo_needs_openid(manager: SessionManager) -> None:
    """A principal without openid is PermissionDenied, naming the scope."""
    principal = Principal(
        user_id="u", sid="s", client_id="rp", scopes=frozenset({"read"}), expires_at=0, token_id="j"
    )
    with pytest.raises(PermissionDenied) as refused:
        await manager.userinfo(principal)
    assert refused.value.required_scopes == ("openid",)


async def test_a_hint_signed_by_another_instances_new_key_verifies(clock: FrozenClock) -> None:
    """A key another instance rotated in is found by one reload of the keys."""
    store = MemoryStore()
    async with (
        SessionManager(TWO_ALGS, store, clock=clock) as ours,
        SessionManager(TWO_ALGS, store, clock=clock) as theirs,
    ):
        await theirs.rotate_signing_keys()
        clock.advance(TWO_ALGS.key_publish_delay)
        pair = await theirs.issue("user-1", client_id="rp", scope="openid")
        token = theirs.mint_id_token(
            pair.session, nonce=None, auth_time=clock.now(), access_token=pair.access_token
        )
        hint = await ours.verify_id_token_hint(token)
        assert hint == IdTokenHint(sub="user-1", sid=pair.session.sid, client_id="rp")
        assert await ours.end_session(hint) is True
        assert await ours.end_session(hint) is False
