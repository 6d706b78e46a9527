"""The documentation site builds with ``--strict`` from the checkout, and its generated
reference pages cover the code: every setting, every route, every command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keyfob.server.openapi import openapi_document
from keyfob.settings import SETTINGS, Settings

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def _text(page: Path) -> str:
    return re.sub(r"<[^>]+>", " ", page.read_text())


def test_the_settings_reference_lists_every_setting(site: Path) -> None:
    text = _text(site / "reference" / "settings" / "index.html")
    missing = [s.env for s in SETTINGS if s.env not in text]
    assert missing == []


def test_the_http_reference_lists_every_route(site: Path) -> None:
    text = _text(site / "reference" / "http" / "index.html")
    document = openapi_document(Settings(issuer="https://auth.example.com"))
    missing = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if f"{method.upper()} {path}" not in text
    ]
    assert missing == []


def test_the_cli_reference_lists_every_command(site: Path) -> None:
    from keyfob.cli import cli

    text = _text(site / "reference" / "cli" / "index.html")
    assert cli.commands, "the CLI has commands"
    missing = [name for name in cli.commands if f"keyfob {name}" not in text]
    assert missing == []


def test_the_python_reference_documents_the_manager(site: Path) -> None:
    text = _text(site / "reference" / "python" / "index.html")
    for name in ("SessionManager", "refresh", "verify_access_token", "InvalidGrant"):
        assert name in text


def test_benchmark_plots_are_published_with_their_page(site: Path) -> None:
    plots = sorted(p.name for p in (ROOT / "bench" / "plots").glob("*.png"))
    assert plots
    for name in plots:
        assert (site / "assets" / "plots" / name).is_file()
    page = (site / "benchmarks" / "index.html").read_text()
    assert "../assets/plots/refresh.png" in page
