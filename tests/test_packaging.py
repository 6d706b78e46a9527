"""What `pip install keyfob` gives a user: the built wheel and sdist, installed (not editable)
into a fresh virtual environment with one extra at a time, run from outside the checkout.

The versions installed are the ones in uv.lock (exported as constraints), so this test
checks the artefacts, not whatever a registry served today; `scripts/upgrade` moves both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .services import free_port, unavailable

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: The one source of keyfob.js; the wheel build copies it into the package (setup.py).
KEYFOB_JS = ROOT / "clients" / "js" / "keyfob.js"
WHEEL_KEYFOB_JS = "keyfob/server/static/keyfob.js"

#: Files that must travel inside the package, or a wheel install breaks away from the checkout.
PACKAGE_DATA = (
    "keyfob/py.typed",
    "keyfob/store/migrations/sqlite/0001_initial.sql",
    "keyfob/store/migrations/postgresql/0001_initial.sql",
    "keyfob/server/static/index.html",
    "keyfob/server/static/demo.js",
    "keyfob/server/static/authorize.css",
    "keyfob/server/templates/base.html",
    "keyfob/server/templates/login.html",
    "keyfob/server/templates/consent.html",
    "keyfob/server/templates/error.html",
    "keyfob/server/templates/end_session.html",
)


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path
    constraints: Path
    uv: str


def _uv() -> str:
    """The uv of the locked development environment (it is in the dev group), else PATH's."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        unavailable("uv is not installed: run scripts/install")
    return found


def _run(
    argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    uv = _uv()
    out = tmp_path_factory.mktemp("dist")
    _ok(_run([uv, "build", "--quiet", "--out-dir", str(out)], cwd=ROOT))
    (wheel,) = out.glob("keyfob-*.whl")
    (sdist,) = out.glob("keyfob-*.tar.gz")
    constraints = out / "constraints.txt"
    export = "export --locked --quiet --all-extras --no-dev --no-hashes --no-emit-project"
    _ok(_run([uv, *export.split(), "--output-file", str(constraints)], cwd=ROOT))
    return Built(wheel, sdist, constraints, uv)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no KEYFOB_* left over, no virtualenv of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYFOB_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    return {**env, **extra}


@pytest.fixture(
    scope="module", params=["", "server", "postgres", "client"], ids=lambda e: e or "base"
)
def installed(
    request: pytest.FixtureRequest, built: Built, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """A fresh venv holding the wheel with one extra, and a work directory outside the checkout."""
    extra: str = request.param
    home = tmp_path_factory.mktemp(f"user-{extra or 'base'}")
    venv = home / "venv"
    _ok(_run([built.uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=home))
    requirement = f"{built.wheel}[{extra}]" if extra else str(built.wheel)
    python = str(venv / "bin" / "python")
    install = [built.uv, "pip", "install", "--quiet", "--python", python]
    _ok(_run([*install, "--constraint", str(built.constraints), requirement], cwd=home))
    return extra, venv


def test_wheel_and_sdist_carry_the_package_data(built: Built) -> None:
    """Migrations, the demo page, keyfob.js and py.typed are in both artefacts."""
    wheel_names = set(zipfile.ZipFile(built.wheel).namelist())
    assert set(PACKAGE_DATA) <= wheel_names
    with tarfile.open(built.sdist) as sdist:
        sdist_names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {f"src/{name}" for name in PACKAGE_DATA} <= sdist_names
    # keyfob.js: the sdist carries its one source, the wheel the copy built from it.
    assert "clients/js/keyfob.js" in sdist_names
    assert f"src/{WHEEL_KEYFOB_JS}" not in sdist_names
    assert zipfile.ZipFile(built.wheel).read(WHEEL_KEYFOB_JS) == KEYFOB_JS.read_bytes()
    assert "uv.lock" not in {name.rsplit("/", 1)[-1] for name in wheel_names}


def test_the_installed_package_comes_from_the_venv_not_the_checkout(
    installed: tuple[str, Path],
) -> None:
    """`import keyfob` in the venv loads the installed copy, with its migrations beside it."""
    _, venv = installed
    probe = (
        "import json, keyfob, importlib.resources as r;"
        "m = r.files('keyfob.store') / 'migrations' / 'sqlite';"
        "print(json.dumps([keyfob.__file__, sorted(p.name for p in m.iterdir())]))"
    )
    out = _ok(_run([str(venv / "bin" / "python"), "-c", probe], cwd=venv.parent, env=_clean_env()))
    location, migrations = json.loads(out)
    assert Path(location).is_relative_to(venv)
    assert "0001_initial.sql" in migrations


def test_version_and_migrate_work_with_any_extra(installed: tuple[str, Path]) -> None:
    """`keyfob --version` and `keyfob migrate` on SQLite need no extra: the CLI is core."""
    _, venv = installed
    keyfob = str(venv / "bin" / "keyfob")
    assert "0.1.0" in _ok(_run([keyfob, "--version"], cwd=venv.parent, env=_clean_env()))
    db = venv.parent / "migrate.db"
    env = _clean_env(KEYFOB_STORE_URL=f"sqlite:///{db}")
    _ok(_run([keyfob, "migrate"], cwd=venv.parent, env=env))
    assert db.exists()
    # A second run finds nothing to do and still succeeds.
    _ok(_run([keyfob, "migrate"], cwd=venv.parent, env=env))


def test_serve_answers_jwks_with_the_server_extra_and_says_what_to_install_without_it(
    installed: tuple[str, Path],
) -> None:
    """With `keyfob[server]` the server answers the JWKS and serves keyfob.js from the
    installed package; without it, one clear line."""
    extra, venv = installed
    port = free_port()
    env = _clean_env(KEYFOB_STORE_URL=f"sqlite:///{venv.parent / 'serve.db'}")
    argv = [str(venv / "bin" / "keyfob"), "serve", "--port", str(port)]
    if extra != "server":
        result = _run(argv, cwd=venv.parent, env=env, timeout=60)
        assert result.returncode != 0
        assert "pip install 'keyfob[server]'" in result.stderr
        assert "Traceback" not in result.stderr
        return
    proc = subprocess.Popen(
        argv, cwd=venv.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        jwks = _wait_for_json(f"http://127.0.0.1:{port}/.well-known/jwks.json", proc)
        url = f"http://127.0.0.1:{port}/static/keyfob.js"
        with urllib.request.urlopen(url, timeout=5) as answer:
            served, media_type = answer.read(), answer.headers["Content-Type"]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    # The access tokens' key (ES256) and the id tokens' (RS256), by default.
    assert sorted(key["alg"] for key in jwks["keys"]) == ["ES256", "RS256"], stderr
    assert served == KEYFOB_JS.read_bytes(), "the wheel's keyfob.js is the one source"
    assert "javascript" in media_type


def test_the_client_extra_brings_the_client_and_no_server(installed: tuple[str, Path]) -> None:
    """`keyfob[client]` imports keyfob.client without Starlette installed; without the
    extra, importing it says what to install."""
    extra, venv = installed
    probe = (
        "import importlib.util as u\n"
        "try:\n    import keyfob.client; print('imported')\n"
        "except ModuleNotFoundError as e:\n    print(e)\n"
        "print(u.find_spec('starlette') is not None)"
    )
    python = str(venv / "bin" / "python")
    out = _ok(_run([python, "-c", probe], cwd=venv.parent, env=_clean_env())).split("\n")
    if extra == "client":
        assert out[:2] == ["imported", "False"]
    elif extra == "server":
        # The server sends webhooks with httpx, so the client comes with it.
        assert out[:2] == ["imported", "True"]
    else:
        assert out[0] == "keyfob.client needs httpx: pip install 'keyfob[client]'"


def _wait_for_json(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0
) -> dict[str, list[dict[str, str]]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"keyfob serve exited {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback)
                document: dict[str, list[dict[str, str]]] = json.load(answer)
                return document
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url} within {timeout} s")
