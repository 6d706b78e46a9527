"""Imports point inward: the core and the package root pull in no edge dependency."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = [
    "starlette",
    "fastapi",
    "uvicorn",
    "httpx",
    "asyncio",
    "sqlite3",
    "asyncpg",
    "psycopg",
    "redis",
    "click",
]


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_core_is_pure() -> None:
    """keyfob.core imports no web framework, HTTP client, event loop or database driver."""
    loaded = _modules_after_import(
        "keyfob.core.lifecycle, keyfob.core.refresh_tokens, "
        "keyfob.core.access_tokens, keyfob.core.keys, keyfob.core.jwk, keyfob.core.jws, "
        "keyfob.core.passwords"
    )
    leaked = sorted(m for m in FORBIDDEN if m in loaded)
    assert leaked == []


@pytest.mark.parametrize("module", ["keyfob"])
def test_package_root_imports_no_optional_dependency(module: str) -> None:
    """import keyfob pulls in no web framework, HTTP client or database driver."""
    loaded = _modules_after_import(module)
    leaked = sorted(m for m in FORBIDDEN if m in loaded and m not in {"asyncio"})
    assert leaked == []
