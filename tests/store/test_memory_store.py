"""The memory store passes the conformance suite."""

from __future__ import annotations

import pytest

from keyfob.store.memory import MemoryStore

from .contract import StoreContract, StoreFactory


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return MemoryStore
