"""The memory store passes the conformance suite."""

from __future__ import annotations

import pytest

from keyfob.store.memory import MemoryStore
from keyfob.store.protocol import Store

from .contract import StoreContract, StoreFactory


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return MemoryStore

    @pytest.fixture
    def write_delays(self) -> list[tuple[Store, float]]:
        # A write is visible the moment it returns, whatever else happens.
        return [(MemoryStore(), 0.0)]
