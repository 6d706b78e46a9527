"""Every public entry point refuses bad tokens with a documented keyfob error, and a
forged token carrying a real session's id never changes that session (issue 2, item 9)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyfob import InvalidGrant, InvalidToken, SessionManager
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

from .conftest import PASSWORD

OTHER_DEPLOYMENT = FAST_SETTINGS.replace(
    secret=type(FAST_SETTINGS.secret)("another-deployment-secret-0123456789abcdef")  # type: ignore[misc]
)


async def _alice(manager: SessionManager):  # type: ignore[no-untyped-def]
    await manager.register("alice", PASSWORD)
    return await manager.login("alice", PASSWORD)


def _bad_refresh_tokens(good: str, foreign: str) -> list[object]:
    raw = base64.urlsafe_b64decode(good[5:] + "==")
    flipped = bytearray(raw)
    flipped[20] ^= 0x01
    return [
        "",
        " ",
        "kfrt_",
        good[:-1],  # truncated
        good[:40],
        good + "A",  # extended
        good * 200,  # oversized
        good.upper(),
        "kfrt_" + base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode(),  # altered
        foreign,  # another deployment's token
        "eyJhbGciOiJub25lIn0.e30.",  # a JWT where a refresh token belongs
        "kfrt_\udcff" * 10,
        "\x00" * 98,
        None,
        42,
        b"kfrt_bytes",
        {"refresh_token": good},
    ]


def _bad_access_tokens(good: str) -> list[object]:
    head, payload, sig = good.split(".")
    return [
        "",
        "a.b",
        "a.b.c",
        good[:-2],
        good + "xx",
        f"{head}.{payload}.",
        f"{head}.{payload[:-3]}AAA.{sig}",
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + payload + ".",
        good * 100,
        "\udcff.\udcff.\udcff",
        None,
        17,
        b"bytes",
    ]


async def test_refresh_and_logout_refuse_bad_tokens(manager: SessionManager) -> None:
    """refresh() and logout() raise InvalidGrant subclasses for every kind of bad token."""
    pair = await _alice(manager)
    async with SessionManager(OTHER_DEPLOYMENT, MemoryStore(), clock=FrozenClock()) as other:
        await other.register("eve", PASSWORD)
        foreign = (await other.login("eve", PASSWORD)).refresh_token.value
    for bad in _bad_refresh_tokens(pair.refresh_token.value, foreign):
        with pytest.raises(InvalidGrant):
            await manager.refresh(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidGrant):
            await manager.logout(bad)  # type: ignore[arg-type]
    after = await manager.store.get_session(pair.session.sid)
    assert after == pair.session  # nothing about the real session changed


async def test_access_token_entry_points_refuse_bad_tokens(manager: SessionManager) -> None:
    """verify_access_token() and its async form raise InvalidToken subclasses for bad tokens."""
    pair = await _alice(manager)
    for bad in _bad_access_tokens(pair.access_token):
        with pytest.raises(InvalidToken):
            manager.verify_access_token(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidToken):
            await manager.verify_access_token_fresh(bad)  # type: ignore[arg-type]


async def test_access_token_from_another_deployment_is_refused(manager: SessionManager) -> None:
    """An access token signed by another keyfob deployment does not verify here."""
    async with SessionManager(OTHER_DEPLOYMENT, MemoryStore(), clock=manager.clock) as other:
        await other.register("eve", PASSWORD)
        foreign = (await other.login("eve", PASSWORD)).access_token
    with pytest.raises(InvalidToken):
        manager.verify_access_token(foreign)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
async def test_fuzzed_input_raises_only_keyfob_errors(
    manager: SessionManager, junk: object
) -> None:
    """Fuzz: arbitrary text or bytes never escape as anything but keyfob errors."""
    with pytest.raises(InvalidGrant):
        await manager.refresh(junk)  # type: ignore[arg-type]
    with pytest.raises(InvalidToken):
        manager.verify_access_token(junk)  # type: ignore[arg-type]


async def test_dataclass_equality_covers_every_field(manager: SessionManager) -> None:
    """The 'nothing changed' checks above compare whole sessions, every field included."""
    pair = await _alice(manager)
    changed = dataclasses.replace(pair.session, last_used_at=pair.session.last_used_at + 1)
    assert changed != pair.session
