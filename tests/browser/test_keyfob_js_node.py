"""keyfob.js: its Node tests pass, and the copy the server ships is the source, byte for byte."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "clients" / "js" / "keyfob.js"
SHIPPED = ROOT / "src" / "keyfob" / "server" / "static" / "keyfob.js"


def test_shipped_keyfob_js_is_the_source() -> None:
    """server/static/keyfob.js is a byte-identical copy of clients/js/keyfob.js."""
    assert SHIPPED.read_bytes() == SOURCE.read_bytes(), (
        "run: cp clients/js/keyfob.js src/keyfob/server/static/keyfob.js"
    )


def test_keyfob_js_node_tests_pass() -> None:
    """`node --test clients/js/test/` passes (single-flight, timers, no storage)."""
    node = shutil.which("node")
    if node is None:
        unavailable("Node.js is not installed: apt-get install nodejs")
    done = subprocess.run(
        [node, "--test", "clients/js/test/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout
