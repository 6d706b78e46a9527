"""The manager and a revocation feed: what it announces, and what it hears (no Redis)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from keyfob import AccessTokenRevoked, RevokeReason, SessionManager, Settings, TokenReused
from keyfob.revocation_feed import RevocationFeed
from keyfob.testing import FrozenClock, MemoryStore

from .conftest import PASSWORD


class MemoryFeed:
    """A feed in a list: what this instance published, and a marker tests can move."""

    def __init__(self) -> None:
        self.published: list[list[str]] = []
        self.marker = 0

    async def publish(self, sids: Sequence[str]) -> None:
        self.published.append(list(sids))

    def another_instance_announced(self) -> None:
        self.marker += 1


def test_the_memory_feed_is_a_revocation_feed() -> None:
    """The test double has the shape the manager expects."""
    feed: RevocationFeed = MemoryFeed()
    assert feed.marker == 0


async def test_every_kind_of_revocation_is_published(settings: Settings) -> None:
    """Logout, revoking one session, logout-all and a password change each publish the
    sids the store revoked, once, right after the store reports them."""
    feed = MemoryFeed()
    async with SessionManager(settings, MemoryStore(), revocation_feed=feed) as manager:
        user = await manager.register("alice", PASSWORD)
        first, second, third, fourth = [await manager.issue(user.id) for _ in range(4)]
        await manager.logout(first.refresh_token)
        await manager.revoke_session(second.session.sid, reason=RevokeReason.ADMIN)
        await manager.change_password(
            user.id, PASSWORD, PASSWORD + " again", keep_sid=fourth.session.sid
        )
        await manager.logout_all(user.id)
    assert feed.published == [
        [first.session.sid],
        [second.session.sid],
        [third.session.sid],
        [fourth.session.sid],
    ]


async def test_nothing_is_published_when_nothing_was_revoked(settings: Settings) -> None:
    """A revocation that finds nothing to revoke announces nothing."""
    feed = MemoryFeed()
    async with SessionManager(settings, MemoryStore(), revocation_feed=feed) as manager:
        user = await manager.register("alice", PASSWORD)
        pair = await manager.issue(user.id)
        assert await manager.revoke_session(pair.session.sid) is True
        assert await manager.revoke_session(pair.session.sid) is False
        assert await manager.revoke_session("no-such-sid") is False
        assert await manager.logout_all(user.id) == []
    assert feed.published == [[pair.session.sid]]


@pytest.mark.parametrize("policy", ["session", "user"])
async def test_reuse_publishes_the_sessions_it_revoked(
    settings: Settings, clock: FrozenClock, policy: str
) -> None:
    """Refresh-token reuse publishes the family it revoked, or every session of the user
    under reuse_policy=user."""
    feed = MemoryFeed()
    strict = settings.replace(grace=0, reuse_policy=policy)
    async with SessionManager(strict, MemoryStore(), clock=clock, revocation_feed=feed) as m:
        user = await m.register("alice", PASSWORD)
        other = await m.issue(user.id)
        pair = await m.issue(user.id)
        await m.refresh(pair.refresh_token)
        clock.advance(1)
        with pytest.raises(TokenReused):
            await m.refresh(pair.refresh_token)
    expected = {pair.session.sid} if policy == "session" else {pair.session.sid, other.session.sid}
    assert [set(sids) for sids in feed.published] == [expected]


async def test_an_announcement_from_another_instance_makes_the_next_verify_resync(
    settings: Settings,
) -> None:
    """Another instance's revocation, which the memory store's marker never announces,
    is refused here as soon as the feed's marker moves, and not before."""
    store = MemoryStore()
    feed = MemoryFeed()
    async with (
        SessionManager(settings, store, revocation_feed=feed) as ours,
        SessionManager(settings, store) as theirs,
    ):
        user = await theirs.register("alice", PASSWORD)
        pair = await theirs.issue(user.id)
        assert (await ours.verify_access_token_fresh(pair.access_token)).sid == pair.session.sid
        await theirs.revoke_session(pair.session.sid)
        # Nothing said "look": this instance has not heard of the revocation yet.
        assert (await ours.verify_access_token_fresh(pair.access_token)).sid == pair.session.sid
        feed.another_instance_announced()
        with pytest.raises(AccessTokenRevoked):
            await ours.verify_access_token_fresh(pair.access_token)
