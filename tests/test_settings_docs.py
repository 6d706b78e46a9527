"""The KEYFOB_* tables of the docs are generated from the settings' descriptions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from keyfob.settings import SETTINGS
from keyfob.settings.markdown import TABLE_BEGIN, TABLE_END, settings_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("document", ["README.md", "docs/cli.md"])
def test_committed_table_is_the_generated_one(document: str) -> None:
    """The table between the markers equals `python -m keyfob.settings --markdown`."""
    text = (ROOT / document).read_text(encoding="utf-8")
    assert text.count(TABLE_BEGIN) == 1 and text.count(TABLE_END) == 1, document
    committed = text.split(TABLE_BEGIN + "\n", 1)[1].split(TABLE_END, 1)[0]
    assert committed == settings_table(), (
        f"{document} is stale: paste the output of `python -m keyfob.settings --markdown`"
    )


def test_module_prints_the_table_between_its_markers() -> None:
    """`python -m keyfob.settings --markdown` prints the block the docs hold."""
    out = subprocess.run(
        [sys.executable, "-m", "keyfob.settings", "--markdown"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out == f"{TABLE_BEGIN}\n{settings_table()}{TABLE_END}\n"


def test_table_has_a_row_per_setting_with_its_flag_and_choices() -> None:
    """Every variable is a row; a flag or a dash; enumerated defaults name the other values."""
    rows = settings_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{s.env}`" for s in SETTINGS]
    signing = next(row for row in rows if "KEYFOB_SIGNING_ALG" in row)
    assert "`--signing-alg`" in signing and "`ES256` (or `Ed25519`, `EdDSA`, `RS256`)" in signing
    id_token = next(row for row in rows if "KEYFOB_ID_TOKEN_ALG" in row)
    assert "`RS256` (or `ES256`, `Ed25519`, `EdDSA`)" in id_token
    assert "| — |" in next(row for row in rows if "KEYFOB_SECRET`" in row)
    assert r"\_\_Secure-" in next(row for row in rows if "KEYFOB_COOKIE_MODE" in row)
