"""keyfob.client's front door: what it exports, its error tree, and what it imports."""

from __future__ import annotations

import re
import subprocess
import sys

import keyfob.client
import keyfob.client.errors

# A program that only talks to keyfob needs none of these.
SERVER_SIDE = ["starlette", "uvicorn", "asyncpg", "redis", "limits", "keyfob.server", "sqlite3"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(out.stdout.split())


def test_all_is_sorted_and_importable() -> None:
    """__all__ is sorted, and every name in it is importable from keyfob.client."""
    assert keyfob.client.__all__ == sorted(keyfob.client.__all__)
    for name in keyfob.client.__all__:
        assert hasattr(keyfob.client, name), name


def test_the_error_tree_is_drawn_as_it_is() -> None:
    """Every error class is exported and appears in the drawing under its real base."""
    drawn: list[tuple[int, str]] = []
    for line in (keyfob.client.errors.__doc__ or "").splitlines():
        match = re.fullmatch(r"    ((?:[│ ]   )*)([├└]── )?([A-Z]\w+).*", line)
        if match:
            drawn.append((len(match.group(1)) // 4 + (1 if match.group(2) else 0), match.group(3)))
    assert sorted(name for _, name in drawn) == sorted(keyfob.client.errors.__all__)
    parents: list[type[Exception]] = []
    for depth, name in drawn:
        cls = getattr(keyfob.client, name)
        del parents[depth:]
        assert cls.__bases__ == ((parents[-1],) if parents else (Exception,)), name
        parents.append(cls)


def test_import_keyfob_does_not_import_the_client_or_httpx() -> None:
    """The client is opt-in: `import keyfob` loads neither it nor httpx."""
    loaded = _modules_after("import keyfob")
    assert "httpx" not in loaded
    assert "keyfob.client" not in loaded


def test_the_client_imports_nothing_of_the_server_side() -> None:
    """`import keyfob.client` needs httpx and nothing a server needs (the `client` extra)."""
    loaded = _modules_after("import keyfob.client")
    assert "httpx" in loaded
    assert sorted(m for m in SERVER_SIDE if m in loaded) == []
