"""The fuzz targets: one module per parser, each with ``check(data)`` and ``seeds()``.

``check`` turns the fuzzer's bytes into an input, runs the parser and asserts its
contract; it returns normally for every input the parser handles as documented.
``seeds`` gives a few inputs that reach the interesting paths, written to
``fuzz/corpus/<name>/`` by ``python -m fuzz seeds``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPUS_DIR", "NAMES", "REGRESSIONS_DIR", "Target", "load"]

#: Every target, cheapest first.
NAMES = ("refresh_token", "access_token", "cookies", "csrf", "transport", "bodies", "asgi")

_ROOT = Path(__file__).resolve().parent.parent
#: The committed seed inputs, one directory per target.
CORPUS_DIR = _ROOT / "corpus"
#: Inputs that once broke a contract (or that guard a fixed bug), one directory per target.
REGRESSIONS_DIR = _ROOT / "regressions"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    check: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]

    def inputs(self) -> list[Path]:
        """The committed inputs of this target: its seeds and its regression cases."""
        files: list[Path] = []
        for directory in (CORPUS_DIR / self.name, REGRESSIONS_DIR / self.name):
            if directory.is_dir():
                files.extend(sorted(p for p in directory.iterdir() if p.is_file()))
        return files


def load(name: str) -> Target:
    """The target ``name`` (its module is imported only now, so that a fuzzing run can
    instrument the code it tests as it is imported)."""
    if name not in NAMES:
        raise KeyError(f"no fuzz target {name!r}; the targets are {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    return Target(name, module.check, module.seeds)
