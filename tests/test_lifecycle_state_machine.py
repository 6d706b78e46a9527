"""A stateful property test: random logins, refreshes, replays, clock jumps, logouts and
revocations against a tiny reference model of spec §3; the real manager must agree."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from keyfob import (
    InvalidGrant,
    RevokeReason,
    SessionExpired,
    SessionManager,
    SessionRevoked,
    TokenReused,
)
from keyfob.core.refresh_tokens import RefreshTokenCodec
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

IDLE, ABSOLUTE, GRACE = 100.0, 400.0, 10.0
PASSWORD = "correct horse battery staple"


@dataclass
class ModelSession:
    counter: int
    rotated_at: float | None
    idle_deadline: float
    absolute_deadline: float
    revoked: bool = False


@dataclass(frozen=True)
class Held:
    """A refresh token some client holds, with what the model knows it to be."""

    text: str
    sid: str
    counter: int


class LifecycleMachine(RuleBasedStateMachine):
    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FrozenClock()
        self.settings_ = FAST_SETTINGS.replace(idle_ttl=IDLE, absolute_ttl=ABSOLUTE, grace=GRACE)
        self.manager = SessionManager(self.settings_, MemoryStore(), clock=self.clock)
        self.run(self.manager.start())
        self.model: dict[str, ModelSession] = {}
        self.user_id = ""

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.manager.close())
        self.loop.close()

    @initialize()
    def register(self) -> None:
        self.user_id = self.run(self.manager.register("alice", PASSWORD)).id

    @rule(target=tokens)
    def login(self) -> Held:
        pair = self.run(self.manager.login("alice", PASSWORD))
        now = self.clock.now()
        self.model[pair.session.sid] = ModelSession(0, None, now + IDLE, now + ABSOLUTE)
        return Held(pair.refresh_token.value, pair.session.sid, 0)

    @rule(seconds=st.sampled_from([0.0, 0.5, 5.0, 10.0, 10.5, 60.0, 99.0, 101.0, 401.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(target=tokens, held=tokens)
    def refresh(self, held: Held) -> Held:
        m = self.model[held.sid]
        now = self.clock.now()
        expected: type[Exception] | None = None
        successor_counter = None
        if m.revoked:
            expected = SessionRevoked
        elif now >= min(m.idle_deadline, m.absolute_deadline):
            expected = SessionExpired
        elif held.counter == m.counter:
            successor_counter = m.counter + 1
        elif (
            held.counter == m.counter - 1
            and m.rotated_at is not None
            and now - m.rotated_at <= GRACE
        ):
            successor_counter = m.counter
        else:
            expected = TokenReused

        try:
            pair = self.run(self.manager.refresh(held.text))
        except InvalidGrant as exc:
            assert expected is not None, f"expected success, got {exc!r}"
            assert type(exc) is expected, f"expected {expected.__name__}, got {exc!r}"
            if expected is TokenReused:
                m.revoked = True
            return held
        assert expected is None, f"expected {expected.__name__}, got success"
        assert successor_counter is not None
        if successor_counter == m.counter + 1:
            m.counter += 1
            m.rotated_at = now
            m.idle_deadline = min(now + IDLE, m.absolute_deadline)
        parsed = self._codec().parse(pair.refresh_token)
        assert (parsed.sid, parsed.counter) == (held.sid, successor_counter)
        return Held(pair.refresh_token.value, held.sid, successor_counter)

    @rule(held=tokens)
    def logout(self, held: Held) -> None:
        revoked_now = self.run(self.manager.logout(held.text))
        assert revoked_now is not self.model[held.sid].revoked
        self.model[held.sid].revoked = True

    @rule(held=tokens)
    def admin_revoke(self, held: Held) -> None:
        revoked_now = self.run(self.manager.revoke_session(held.sid, reason=RevokeReason.ADMIN))
        assert revoked_now is not self.model[held.sid].revoked
        self.model[held.sid].revoked = True

    @invariant()
    def store_agrees_with_model(self) -> None:
        for sid, m in self.model.items():
            s = self.run(self.manager.store.get_session(sid))
            assert s is not None
            assert s.counter == m.counter
            assert s.revoked == m.revoked
            assert s.absolute_expires_at == m.absolute_deadline
            assert s.idle_expires_at == m.idle_deadline

    @invariant()
    def sessions_list_shows_exactly_the_live_ones(self) -> None:
        if not self.user_id:
            return
        now = self.clock.now()
        live = {
            sid
            for sid, m in self.model.items()
            if not m.revoked and now < min(m.idle_deadline, m.absolute_deadline)
        }
        listed = {s.sid for s in self.run(self.manager.list_sessions(self.user_id))}
        assert listed == live

    def _codec(self) -> RefreshTokenCodec:
        return self.manager._codec


LifecycleMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = LifecycleMachine.TestCase
