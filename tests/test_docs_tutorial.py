"""docs/tutorial.md runs as written: its Python blocks, in order, in one namespace.

The blocks are what a reader pastes into ``python -m asyncio``, so top-level ``await`` is
allowed. Every ``print`` whose line has a ``# expected`` comment must print what the
comment says (up to a ": " that starts an explanation; a promise ending in "…" is a
prefix), so the page cannot claim an
output keyfob no longer gives.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import types
from pathlib import Path

TUTORIAL = Path(__file__).parents[1] / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    return [m.group(1) for m in BLOCK.finditer(text)]


def expected_outputs(block: str) -> list[str]:
    """The outputs a block's ``print(...)  # comment`` lines promise, in order."""
    promised = []
    for line in block.splitlines():
        if line.lstrip().startswith("print(") and "#" in line:
            comment = line.split("#", 1)[1].strip()
            promised.append(comment.split(": ", 1)[0].strip())
    return promised


async def test_every_block_of_the_tutorial_runs_and_prints_what_it_says() -> None:
    blocks = python_blocks(TUTORIAL.read_text())
    assert len(blocks) >= 10
    namespace: dict[str, object] = {"__name__": "__tutorial__"}
    for number, block in enumerate(blocks, 1):
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        code = compile(block, f"tutorial block {number}", "exec", flags=flags)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = eval(code, namespace)  # noqa: S307 - the project's own docs
            if isinstance(result, types.CoroutineType):
                await result
        printed = out.getvalue().splitlines()
        promised = expected_outputs(block)
        assert len(printed) == len(promised), (number, printed, promised)
        for line, promise in zip(printed, promised, strict=True):
            if promise.endswith("…"):
                assert line.startswith(promise.removesuffix("…")), (number, line, promise)
            else:
                assert line == promise, (number, line, promise)
