"""The rules of spec §3 as a table: what a failed conditional rotation means."""

from __future__ import annotations

import dataclasses

import pytest

from keyfob.core import lifecycle
from keyfob.core.lifecycle import (
    Expired,
    GraceSuccessor,
    Lifetimes,
    NotFound,
    Reused,
    Revoked,
    Unrecognised,
    classify_refresh_failure,
)
from keyfob.core.models import DeviceInfo, ReuseRule, Session

T0 = 1_000_000.0
LIFETIMES = Lifetimes(idle=7 * 86400, absolute=30 * 86400, grace=10)
HASH = b"h" * 32


def _session(**changes: object) -> Session:
    base = lifecycle.new_session(
        sid="s1",
        user_id="u1",
        client_id="c",
        scope="",
        secret_hash=HASH,
        now=T0,
        lifetimes=LIFETIMES,
        device=DeviceInfo(),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_new_session_deadlines() -> None:
    """A new session starts at counter 0 with idle and absolute deadlines from now."""
    s = _session()
    assert s.counter == 0
    assert s.idle_expires_at == T0 + LIFETIMES.idle
    assert s.absolute_expires_at == T0 + LIFETIMES.absolute
    assert s.rotated_at is None


def test_idle_deadline_never_passes_the_absolute_one() -> None:
    """Activity moves the idle deadline, capped at the absolute deadline."""
    absolute = T0 + LIFETIMES.absolute
    assert lifecycle.idle_deadline(T0, absolute, LIFETIMES) == T0 + LIFETIMES.idle
    late = absolute - 60
    assert lifecycle.idle_deadline(late, absolute, LIFETIMES) == absolute


ROTATED_AT = T0 + 100

CASES = [
    # (name, session changes, presented counter, presented hash, now, expected type, rule)
    ("unknown session", None, 0, HASH, T0, NotFound, None),
    ("wrong secret", {"counter": 3}, 2, b"x" * 32, ROTATED_AT, Unrecognised, None),
    ("counter ahead of store", {"counter": 3}, 5, HASH, ROTATED_AT, Unrecognised, None),
    (
        "revoked",
        {"counter": 3, "revoked_at": T0 + 50, "revoked_reason": "logout"},
        3,
        HASH,
        ROTATED_AT,
        Revoked,
        None,
    ),
    (
        "revoked beats reuse",
        {"counter": 3, "revoked_at": T0 + 50},
        1,
        HASH,
        ROTATED_AT,
        Revoked,
        None,
    ),
    (
        "idle expired",
        {"counter": 3, "idle_expires_at": T0 + 90},
        3,
        HASH,
        ROTATED_AT,
        Expired,
        None,
    ),
    (
        "absolute expired",
        {"counter": 3, "absolute_expires_at": T0 + 90},
        2,
        HASH,
        ROTATED_AT,
        Expired,
        None,
    ),
    ("previous within grace", {"counter": 3}, 2, HASH, ROTATED_AT + 10, GraceSuccessor, None),
    (
        "previous just after grace",
        {"counter": 3},
        2,
        HASH,
        ROTATED_AT + 10.001,
        Reused,
        ReuseRule.PREVIOUS_OUTSIDE_GRACE,
    ),
    (
        "two behind within grace",
        {"counter": 3},
        1,
        HASH,
        ROTATED_AT + 1,
        Reused,
        ReuseRule.OLDER_TOKEN,
    ),
    (
        "first token long after",
        {"counter": 9},
        0,
        HASH,
        ROTATED_AT + 5000,
        Reused,
        ReuseRule.OLDER_TOKEN,
    ),
]


@pytest.mark.parametrize(
    ("changes", "counter", "secret_hash", "now", "expected", "rule"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_classify_refresh_failure(
    changes: dict[str, object] | None,
    counter: int,
    secret_hash: bytes,
    now: float,
    expected: type,
    rule: ReuseRule | None,
) -> None:
    """Each way a rotation can fail maps to exactly one decision."""
    session = None if changes is None else _session(rotated_at=ROTATED_AT, **changes)
    decision = classify_refresh_failure(
        session,
        presented_counter=counter,
        presented_secret_hash=secret_hash,
        now=now,
        lifetimes=LIFETIMES,
    )
    assert type(decision) is expected
    if rule is not None:
        assert isinstance(decision, Reused)
        assert decision.rule is rule


def test_grace_disabled_makes_the_previous_token_reuse() -> None:
    """With grace 0 the immediately previous token is reuse at once, by its own rule."""
    no_grace = dataclasses.replace(LIFETIMES, grace=0)
    decision = classify_refresh_failure(
        _session(counter=3, rotated_at=ROTATED_AT),
        presented_counter=2,
        presented_secret_hash=HASH,
        now=ROTATED_AT,
        lifetimes=no_grace,
    )
    assert isinstance(decision, Reused)
    assert decision.rule is ReuseRule.PREVIOUS_GRACE_DISABLED


def test_grace_successor_carries_the_current_session() -> None:
    """Within grace, the decision hands back the session at its current counter."""
    s = _session(counter=4, rotated_at=ROTATED_AT)
    decision = classify_refresh_failure(
        s, presented_counter=3, presented_secret_hash=HASH, now=ROTATED_AT + 1, lifetimes=LIFETIMES
    )
    assert decision == GraceSuccessor(s)


@pytest.mark.parametrize(
    ("counter", "revoked_at", "now"),
    [
        pytest.param(3, None, ROTATED_AT + 1, id="previous-token-within-grace"),
        pytest.param(3, None, ROTATED_AT + 60, id="previous-token-after-grace"),
        pytest.param(1, None, ROTATED_AT + 1, id="older-token"),
        pytest.param(3, ROTATED_AT, ROTATED_AT + 1, id="revoked"),
        pytest.param(4, None, T0 + LIFETIMES.absolute, id="expired"),
    ],
)
def test_another_clients_genuine_token_is_only_refused(
    counter: int, revoked_at: float | None, now: float
) -> None:
    """A genuine token presented by another client is OtherClient, whatever else holds:
    never a grace successor (that would hand the session over) nor a reuse alarm."""
    session = _session(counter=4, rotated_at=ROTATED_AT, revoked_at=revoked_at)
    decision = classify_refresh_failure(
        session,
        presented_counter=counter,
        presented_secret_hash=HASH,
        now=now,
        lifetimes=LIFETIMES,
        presented_client_id="other",
    )
    assert decision == lifecycle.OtherClient(session)


def test_the_sessions_own_client_is_classified_as_before() -> None:
    """Presented by its own client, the previous token within grace is the successor;
    a forgery by another client is still Unrecognised, not OtherClient."""
    session = _session(counter=4, rotated_at=ROTATED_AT)
    mine = classify_refresh_failure(
        session,
        presented_counter=3,
        presented_secret_hash=HASH,
        now=ROTATED_AT + 1,
        lifetimes=LIFETIMES,
        presented_client_id="c",
    )
    assert mine == GraceSuccessor(session)
    forged = classify_refresh_failure(
        session,
        presented_counter=3,
        presented_secret_hash=b"x" * 32,
        now=ROTATED_AT + 1,
        lifetimes=LIFETIMES,
        presented_client_id="other",
    )
    assert isinstance(forged, Unrecognised)
