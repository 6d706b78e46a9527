"""Shared fixtures: a manager on the memory store with a frozen clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keyfob import SessionManager, Settings
from keyfob.testing import FAST_SETTINGS, FrozenClock, MemoryStore

# Throwaway PostgreSQL and Redis servers for the suites that need them (session-scoped).
from .services import postgres_server, redis_server  # noqa: F401

PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings() -> Settings:
    return FAST_SETTINGS


@pytest.fixture
async def manager(settings: Settings, clock: FrozenClock) -> AsyncIterator[SessionManager]:
    async with SessionManager(settings, MemoryStore(), clock=clock) as m:
        yield m
