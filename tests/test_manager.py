"""The session lifecycle through the Python API (spec §3), on the memory store."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from keyfob import (
    AccessTokenRevoked,
    AuthenticationFailed,
    DeviceInfo,
    EventKind,
    InvalidGrant,
    MalformedToken,
    ReuseRule,
    RevokeReason,
    SecurityEvent,
    SessionExpired,
    SessionManager,
    SessionNotFound,
    SessionRevoked,
    Settings,
    TokenReused,
    UserExists,
    WeakPassword,
)
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import PASSWORD


async def _login(manager: SessionManager, username: str = "alice", **kw: object):  # type: ignore[no-untyped-def]
    if await manager.store.get_user_by_name(username) is None:
        await manager.register(username, PASSWORD)
    return await manager.login(username, PASSWORD, **kw)  # type: ignore[arg-type]


def _claims(access_token: str) -> dict[str, object]:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "==="))  # type: ignore[no-any-return]


# login


async def test_login_issues_a_session_and_both_tokens(manager: SessionManager) -> None:
    """Login creates one session and returns a refresh token and an RFC 9068 access token."""
    pair = await _login(manager, device=DeviceInfo(user_agent="Firefox", ip="203.0.113.9"))
    assert pair.refresh_token.value.startswith("kfrt_")
    assert pair.token_type == "Bearer"
    assert pair.expires_in == int(manager.settings.access_ttl)
    claims = _claims(pair.access_token)
    assert claims["sid"] == pair.session.sid
    assert claims["sub"] == pair.session.user_id
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"} <= claims.keys()
    assert "scope" not in claims, "no scope is no claim, never the empty string"
    assert claims["client_id"] == "keyfob"
    principal = manager.verify_access_token(pair.access_token)
    assert principal.sid == pair.session.sid
    sessions = await manager.list_sessions(pair.session.user_id)
    assert [s.sid for s in sessions] == [pair.session.sid]
    assert sessions[0].device == DeviceInfo(user_agent="Firefox", ip="203.0.113.9")


async def test_wrong_password_and_unknown_user_answer_alike(manager: SessionManager) -> None:
    """A wrong password and an unknown user raise the same error with the same message."""
    await manager.register("alice", PASSWORD)
    with pytest.raises(AuthenticationFailed) as wrong:
        await manager.login("alice", "not the password at all")
    with pytest.raises(AuthenticationFailed) as unknown:
        await manager.login("mallory", PASSWORD)
    assert str(wrong.value) == str(unknown.value)
    kinds = [e.kind for e in await manager.events(kind=EventKind.LOGIN_FAILED)]
    assert kinds == [EventKind.LOGIN_FAILED, EventKind.LOGIN_FAILED]


async def test_login_event_is_recorded(manager: SessionManager) -> None:
    """A successful login leaves a login_ok event naming the user and session."""
    pair = await _login(manager)
    [event] = await manager.events(kind=EventKind.LOGIN_OK)
    assert (event.user_id, event.sid) == (pair.session.user_id, pair.session.sid)


async def test_register_rejects_weak_and_duplicate(manager: SessionManager) -> None:
    """Registration refuses a weak password and a taken username with clear messages."""
    with pytest.raises(WeakPassword, match="at least 10 characters"):
        await manager.register("bob", "short")
    await manager.register("bob", PASSWORD)
    with pytest.raises(UserExists):
        await manager.register("BOB", PASSWORD)


async def test_password_rehashed_when_parameters_change(clock: FrozenClock) -> None:
    """A hash made with other argon2 parameters is replaced at the next successful login."""
    from keyfob.testing import FAST_SETTINGS

    store = MemoryStore()
    strong = FAST_SETTINGS.replace(password_profile="rfc9106-low-memory")
    async with SessionManager(strong, store, clock=clock) as m:
        user = await m.register("carol", PASSWORD)
    async with SessionManager(FAST_SETTINGS, store, clock=clock) as m:
        await m.login("carol", PASSWORD)
        rehashed = await store.get_user(user.id)
        assert rehashed is not None and rehashed.password_hash != user.password_hash
        await m.login("carol", PASSWORD)  # the new hash verifies


# refresh and rotation


async def test_refresh_rotates(manager: SessionManager) -> None:
    """A refresh returns a new refresh token and bumps the session's counter; one row stays."""
    pair = await _login(manager)
    nxt = await manager.refresh(pair.refresh_token.value)
    assert nxt.refresh_token != pair.refresh_token
    assert nxt.session.sid == pair.session.sid
    assert nxt.session.counter == 1
    assert await manager.store.count_sessions() == 1


async def test_identical_successor_within_grace(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """Presenting the previous token within grace returns the very same successor."""
    pair = await _login(manager)
    first = await manager.refresh(pair.refresh_token)
    clock.advance(9)
    again = await manager.refresh(pair.refresh_token)
    assert again.refresh_token == first.refresh_token
    assert again.session.counter == first.session.counter == 1
    # The successor still works, so the client is not stuck.
    assert (await manager.refresh(again.refresh_token)).session.counter == 2


async def test_reuse_after_grace_revokes_the_family(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """The previous token after the grace window revokes the session and says which rule fired."""
    pair = await _login(manager)
    successor = await manager.refresh(pair.refresh_token)
    clock.advance(11)
    with pytest.raises(TokenReused) as info:
        await manager.refresh(pair.refresh_token)
    assert info.value.rule == ReuseRule.PREVIOUS_OUTSIDE_GRACE
    assert info.value.error == "invalid_grant"
    with pytest.raises(SessionRevoked):
        await manager.refresh(successor.refresh_token)
    with pytest.raises(AccessTokenRevoked):
        manager.verify_access_token(successor.access_token)
    [event] = await manager.events(kind=EventKind.REUSE_DETECTED)
    assert event.sid == pair.session.sid
    assert "rule=previous_token_outside_grace" in event.detail
    assert pair.refresh_token.value not in event.detail


async def test_older_token_is_reuse_even_within_grace(manager: SessionManager) -> None:
    """A token two rotations old is reuse at once."""
    pair = await _login(manager)
    one = await manager.refresh(pair.refresh_token)
    await manager.refresh(one.refresh_token)
    with pytest.raises(TokenReused) as info:
        await manager.refresh(pair.refresh_token)
    assert info.value.rule == ReuseRule.OLDER_TOKEN


async def test_reuse_hook_is_called(settings: Settings, clock: FrozenClock) -> None:
    """The configured hook (sync or async) gets the reuse event after the revocation."""
    seen: list[SecurityEvent] = []

    async def hook(event: SecurityEvent) -> None:
        seen.append(event)

    async with SessionManager(
        settings.replace(grace=0), MemoryStore(), clock=clock, on_reuse=hook
    ) as m:
        pair = await _login(m)
        await m.refresh(pair.refresh_token)
        with pytest.raises(TokenReused):
            await m.refresh(pair.refresh_token)
    assert [e.kind for e in seen] == [EventKind.REUSE_DETECTED]
    assert "rule=previous_token_grace_disabled" in seen[0].detail


async def test_failing_reuse_hook_does_not_undo_revocation(
    settings: Settings, clock: FrozenClock
) -> None:
    """A hook that raises is logged; the session stays revoked and the caller gets TokenReused."""

    def hook(event: SecurityEvent) -> None:
        raise RuntimeError("webhook down")

    async with SessionManager(
        settings.replace(grace=0), MemoryStore(), clock=clock, on_reuse=hook
    ) as m:
        pair = await _login(m)
        nxt = await m.refresh(pair.refresh_token)
        with pytest.raises(TokenReused):
            await m.refresh(pair.refresh_token)
        with pytest.raises(SessionRevoked):
            await m.refresh(nxt.refresh_token)


async def test_user_reuse_policy_revokes_every_session(
    settings: Settings, clock: FrozenClock
) -> None:
    """With reuse_policy=user, reuse in one session revokes all of the user's sessions."""
    async with SessionManager(
        settings.replace(reuse_policy="user"), MemoryStore(), clock=clock
    ) as m:
        laptop = await _login(m)
        phone = await _login(m)
        await m.refresh(laptop.refresh_token)
        clock.advance(60)
        with pytest.raises(TokenReused):
            await m.refresh(laptop.refresh_token)
        with pytest.raises(SessionRevoked):
            await m.refresh(phone.refresh_token)
        assert await m.list_sessions(laptop.session.user_id) == []


async def test_concurrent_refreshes_have_one_winner(manager: SessionManager) -> None:
    """Fifty concurrent refreshes of one token rotate once and all get the same successor."""
    pair = await _login(manager)
    results = await asyncio.gather(*(manager.refresh(pair.refresh_token) for _ in range(50)))
    assert {r.refresh_token.value for r in results} == {results[0].refresh_token.value}
    session = await manager.store.get_session(pair.session.sid)
    assert session is not None and session.counter == 1


async def test_concurrent_refreshes_without_grace(settings: Settings, clock: FrozenClock) -> None:
    """With grace off, one concurrent refresh wins and the others are refused."""
    async with SessionManager(settings.replace(grace=0), MemoryStore(), clock=clock) as m:
        pair = await _login(m)
        results = await asyncio.gather(
            *(m.refresh(pair.refresh_token) for _ in range(20)), return_exceptions=True
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        assert len(wins) == 1
        assert all(isinstance(r, InvalidGrant) for r in results if isinstance(r, BaseException))


# expiry


async def test_idle_expiry(manager: SessionManager, clock: FrozenClock) -> None:
    """A session unused for longer than the idle lifetime cannot be refreshed."""
    pair = await _login(manager)
    clock.advance(manager.settings.idle_ttl + 1)
    with pytest.raises(SessionExpired):
        await manager.refresh(pair.refresh_token)


async def test_refresh_moves_idle_deadline_not_absolute(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """Regular refreshes keep a session alive until the absolute deadline, never past it."""
    pair = await _login(manager)
    token = pair.refresh_token
    absolute = pair.session.absolute_expires_at
    step = manager.settings.idle_ttl - 60
    while clock.now() + step < absolute:
        clock.advance(step)
        nxt = await manager.refresh(token)
        assert nxt.session.absolute_expires_at == absolute
        assert nxt.session.idle_expires_at <= absolute
        token = nxt.refresh_token
    clock.set(absolute)
    with pytest.raises(SessionExpired):
        await manager.refresh(token)


# revocation


async def test_logout_revokes_the_session(manager: SessionManager) -> None:
    """Logout with the refresh token revokes its session and its access tokens at once."""
    pair = await _login(manager)
    assert await manager.logout(pair.refresh_token) is True
    with pytest.raises(SessionRevoked):
        await manager.refresh(pair.refresh_token)
    with pytest.raises(AccessTokenRevoked):
        manager.verify_access_token(pair.access_token)
    assert await manager.logout(pair.refresh_token) is False


async def test_logout_all(manager: SessionManager) -> None:
    """Logout-all revokes every session of the user and no one else's."""
    a1, a2 = await _login(manager), await _login(manager)
    bob = await _login(manager, "bob")
    revoked = await manager.logout_all(a1.session.user_id)
    assert set(revoked) == {a1.session.sid, a2.session.sid}
    for p in (a1, a2):
        with pytest.raises(SessionRevoked):
            await manager.refresh(p.refresh_token)
    await manager.refresh(bob.refresh_token)


async def test_revoke_one_of_own_sessions(manager: SessionManager) -> None:
    """A user can revoke one of their sessions by sid, but not another user's."""
    a1, a2 = await _login(manager), await _login(manager)
    bob = await _login(manager, "bob")
    user = a1.session.user_id
    assert not await manager.revoke_session(
        bob.session.sid, reason=RevokeReason.USER_REVOKED, user_id=user
    )
    assert await manager.revoke_session(
        a2.session.sid, reason=RevokeReason.USER_REVOKED, user_id=user
    )
    assert [s.sid for s in await manager.list_sessions(user)] == [a1.session.sid]
    await manager.refresh(bob.refresh_token)


async def test_password_change_revokes_other_sessions(manager: SessionManager) -> None:
    """Changing the password keeps the current session and revokes all others."""
    here, there = await _login(manager), await _login(manager)
    user = here.session.user_id
    revoked = await manager.change_password(
        user, PASSWORD, "an entirely new passphrase", keep_sid=here.session.sid
    )
    assert revoked == [there.session.sid]
    await manager.refresh(here.refresh_token)
    with pytest.raises(SessionRevoked):
        await manager.refresh(there.refresh_token)
    await manager.login("alice", "an entirely new passphrase")
    with pytest.raises(AuthenticationFailed):
        await manager.login("alice", PASSWORD)


async def test_revocation_is_seen_by_another_manager_on_the_same_store(clock: FrozenClock) -> None:
    """A second manager sharing the store rejects the access token after syncing revocations."""
    from keyfob.testing import FAST_SETTINGS

    store = MemoryStore()
    async with SessionManager(FAST_SETTINGS, store, clock=clock) as one:
        two = SessionManager(FAST_SETTINGS, store, clock=clock)
        await two.start()
        pair = await _login(one)
        two.verify_access_token(pair.access_token)
        await one.logout(pair.refresh_token)
        await two.sync_revocations()
        with pytest.raises(AccessTokenRevoked):
            two.verify_access_token(pair.access_token)


async def test_purge_removes_expired_sessions(manager: SessionManager, clock: FrozenClock) -> None:
    """purge() deletes expired sessions and keeps live ones."""
    old = await _login(manager)
    clock.advance(manager.settings.idle_ttl + 1)
    fresh = await _login(manager)
    assert await manager.purge(batch=1) == 1
    assert await manager.store.get_session(old.session.sid) is None
    assert await manager.store.get_session(fresh.session.sid) is not None


# forgeries


async def test_forged_token_never_reaches_the_store(manager: SessionManager) -> None:
    """A malformed token is refused before any store call."""
    calls: list[str] = []
    real_rotate = manager.store.rotate

    async def spy(*a: object, **kw: object):  # type: ignore[no-untyped-def]
        calls.append("rotate")
        return await real_rotate(*a, **kw)  # type: ignore[arg-type]

    manager.store.rotate = spy  # type: ignore[method-assign]
    pair = await _login(manager)
    text = pair.refresh_token.value
    for bad in (
        "",
        "kfrt_x",
        text[:-1],
        text[:-1] + ("A" if text[-1] != "A" else "B"),
        "x" * 10_000,
    ):
        with pytest.raises(MalformedToken):
            await manager.refresh(bad)
    assert calls == []


async def test_forgery_with_a_real_sid_changes_nothing(
    settings: Settings, clock: FrozenClock
) -> None:
    """A token minted with a leaked MAC key but no session secret is refused, revoking nothing."""
    from keyfob.core.refresh_tokens import RefreshTokenCodec, derive_mac_key
    from keyfob.settings import load_deployment_secret

    async with SessionManager(settings, MemoryStore(), clock=clock) as m:
        pair = await _login(m)
        leaked = RefreshTokenCodec([derive_mac_key(load_deployment_secret(settings)[0])])
        forged = leaked.mint(pair.session.sid, b"\0" * 16, 0)
        with pytest.raises(InvalidGrant):
            await m.refresh(forged)
        forged_old = leaked.mint(pair.session.sid, b"\0" * 16, 5)
        with pytest.raises(InvalidGrant):
            await m.refresh(forged_old)
        assert (await m.refresh(pair.refresh_token)).session.counter == 1
        assert await m.events(kind=EventKind.REUSE_DETECTED) == []


async def test_unknown_session(manager: SessionManager) -> None:
    """A well-formed token of a session that does not exist raises SessionNotFound."""
    pair = await _login(manager)
    await manager.purge()
    other = MemoryStore()
    m2 = SessionManager(manager.settings, other, clock=manager.clock)  # same secret, empty store
    await m2.start()
    with pytest.raises(SessionNotFound):
        await m2.refresh(pair.refresh_token)


# the verified-token cache


async def test_cached_token_still_expires(manager: SessionManager, clock: FrozenClock) -> None:
    """A token verified before is refused once it expires, cache or not."""
    from keyfob import ExpiredAccessToken

    pair = await _login(manager)
    manager.verify_access_token(pair.access_token)
    clock.advance(manager.settings.access_ttl + manager.settings.leeway + 1)
    with pytest.raises(ExpiredAccessToken):
        manager.verify_access_token(pair.access_token)


async def test_cached_token_still_sees_revocation(manager: SessionManager) -> None:
    """A token verified before is refused at once after its session is revoked."""
    pair = await _login(manager)
    manager.verify_access_token(pair.access_token)
    await manager.revoke_session(pair.session.sid)
    with pytest.raises(AccessTokenRevoked):
        manager.verify_access_token(pair.access_token)


async def test_cached_token_stops_when_its_key_is_withdrawn(
    manager: SessionManager, clock: FrozenClock
) -> None:
    """Removing a signing key from the store makes its tokens fail at the next key reload."""
    from keyfob import BadSignature

    pair = await _login(manager)
    manager.verify_access_token(pair.access_token)
    await manager.rotate_signing_key()
    clock.advance(manager.settings.key_publish_delay + 1)
    old = min(await manager.store.load_keys(), key=lambda k: k.created_at).kid
    await manager.store.delete_keys([old])
    await manager.reload_keys()
    with pytest.raises(BadSignature):
        manager.verify_access_token(pair.access_token)


async def test_repeat_verification_is_cheap(manager: SessionManager) -> None:
    """A second verification of the same token does not run the signature check again."""
    pair = await _login(manager)
    manager.verify_access_token(pair.access_token)
    calls = []
    real = manager.verifier._claims

    class Counting:
        def verify(self, token: str, *, now: float):  # type: ignore[no-untyped-def]
            calls.append(token)
            return real.verify(token, now=now)

    manager.verifier._claims = Counting()  # type: ignore[assignment]
    for _ in range(3):
        manager.verify_access_token(pair.access_token)
    assert calls == []
