"""Leave the shared-database tests out for stores that cannot share a database."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        cls = getattr(item, "cls", None)
        if item.get_closest_marker("shared_database") and not getattr(
            cls, "supports_multiprocess", True
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
