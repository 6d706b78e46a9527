"""deploy/systemd/keyfob.service: a valid unit, and as sandboxed as systemd can tell.

``systemd-analyze verify`` checks the syntax and that the binaries exist; ``security
--offline`` scores the sandbox without a running systemd (this machine has none as PID 1).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import unavailable

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "keyfob.service"
INSTALLED_KEYFOB = "/opt/keyfob/.venv/bin/keyfob"


@pytest.fixture
def unit_here(tmp_path: Path) -> Path:
    """The unit with its ExecStart pointed at this environment's keyfob, which exists."""
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze is not installed: apt-get install systemd")
    keyfob = Path(sys.executable).parent / "keyfob"
    assert keyfob.exists(), keyfob
    text = UNIT.read_text()
    assert INSTALLED_KEYFOB in text
    unit = tmp_path / "keyfob.service"
    unit.write_text(text.replace(INSTALLED_KEYFOB, str(keyfob)))
    return unit


def test_the_unit_verifies(unit_here: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit_here)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # verify prints warnings (unknown directives, typos) without failing: none allowed.
    assert done.stderr.strip() == "", done.stderr


def test_the_sandbox_rates_ok(unit_here: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit_here)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    score = re.search(r"Overall exposure level for keyfob\.service: ([0-9.]+) (\w+)", done.stdout)
    assert score is not None, done.stdout
    # systemd's scale: 0-10, where below 2 is "OK" (the best band).
    assert float(score.group(1)) < 2.0, done.stdout
    assert score.group(2) == "OK"


def test_the_secret_is_a_credential_not_an_environment_variable() -> None:
    text = UNIT.read_text()
    assert "LoadCredential=secret:" in text
    assert "KEYFOB_SECRET_FILE=%d/secret" in text
    assert re.search(r"^Environment=KEYFOB_SECRET=", text, re.MULTILINE) is None
