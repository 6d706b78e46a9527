"""keyfob.js as one npm package: its Node tests pass, its types check, it packs what it
should, and git holds no second copy of it (the wheel's copy is made by the build)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "js"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (Node.js 20 comes with the machine)")
    return found


def _run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dev_dependencies() -> None:
    """node_modules as package-lock.json pins it (`npm ci` from the registry, once)."""
    npm = _tool("npm")
    lock = json.loads((PACKAGE / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/typescript"]["version"]
    installed = PACKAGE / "node_modules" / "typescript" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != pinned:
        _run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"])


def test_git_holds_one_keyfob_js() -> None:
    """No copy of keyfob.js beside the demo page: the server reads clients/js/keyfob.js."""
    assert (PACKAGE / "keyfob.js").is_file()
    assert not (ROOT / "src" / "keyfob" / "server" / "static" / "keyfob.js").exists()


def test_keyfob_js_node_tests_pass() -> None:
    """`node --test clients/js/test/` passes (single flight, timers, retries, tabs)."""
    done = _run([_tool("node"), "--test", "test/"], timeout=180)
    assert "# fail 0" in done.stdout and "# cancelled 0" in done.stdout, done.stdout


def test_types_check(dev_dependencies: None) -> None:
    """`tsc --noEmit`: the JSDoc-typed source is strict-clean and matches types/keyfob.d.ts."""
    _run([str(PACKAGE / "node_modules" / ".bin" / "tsc"), "--noEmit", "-p", "tsconfig.json"])


def test_npm_package_is_publishable_as_it_is() -> None:
    """`npm pack` takes the module, its types, README and licence; the version is keyfob's."""
    done = _run([_tool("npm"), "pack", "--dry-run", "--json", "--ignore-scripts"])
    (packed,) = json.loads(done.stdout)
    files = {entry["path"] for entry in packed["files"]}
    assert files == {"keyfob.js", "types/keyfob.d.ts", "package.json", "README.md", "LICENSE"}
    manifest = json.loads((PACKAGE / "package.json").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"]
    assert manifest["license"] == project["license"] == "MIT"
    assert manifest["exports"]["."] == {"types": "./types/keyfob.d.ts", "default": "./keyfob.js"}


def test_the_package_exports_resolve_in_node() -> None:
    """`import "keyfob"` (the package's own name, through `exports`) gives the client."""
    probe = "const m = await import('keyfob');console.log(JSON.stringify(Object.keys(m).sort()));"
    done = _run([_tool("node"), "--input-type=module", "-e", probe])
    assert json.loads(done.stdout) == ["Client", "DEFAULTS", "KeyfobError", "decodeClaims"]
