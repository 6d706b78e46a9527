"""Fixtures for the client tests: a settable clock and the fake auth server + API."""

from __future__ import annotations

import pytest

from .fakes import Clock, FakeAuthServer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> FakeAuthServer:
    return FakeAuthServer(clock=clock)
