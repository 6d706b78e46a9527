"""Each fuzz target runs under atheris for a few seconds and its contract holds.

A bounded run in every CI build (about 45 s for all targets on two cores); the long
runs are `scripts/fuzz --seconds N`. A finding fails the test with atheris's traceback
and the input, saved under the test's temporary directory: copy it to
fuzz/regressions/<target>/ with the fix.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.targets import NAMES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 4


@pytest.mark.parametrize("target", NAMES)
def test_fuzzing_finds_no_contract_violation(target: str, tmp_path: Path) -> None:
    """libFuzzer mutates the target's corpus for a few seconds; nothing breaks its contract."""
    result = subprocess.run(
        [sys.executable, "-m", "fuzz", "all", "--seconds", str(SECONDS),
         "--artifacts", str(tmp_path), target],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"fuzz {target}: contract held" in result.stdout
