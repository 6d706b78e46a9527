"""The conformance suite's plumbing: tests a store cannot run are left out, not skipped;
a test of a backend's list runs once per item."""

from __future__ import annotations

import pytest

#: A contract marker, and the StoreContract attribute a backend sets to run what it marks.
CAPABILITIES = {
    "shared_database": "supports_multiprocess",
    "sql_database": "supports_sql",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "unusable_url" in metafunc.fixturenames:
        metafunc.parametrize("unusable_url", getattr(metafunc.cls, "unusable_urls", ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        cls = getattr(item, "cls", None)
        if any(
            item.get_closest_marker(marker) and not getattr(cls, capability, True)
            for marker, capability in CAPABILITIES.items()
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
