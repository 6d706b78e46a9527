"""The one build step pyproject.toml cannot declare: the wheel carries keyfob.js.

keyfob.js has one source, ``clients/js/keyfob.js`` (also the npm package). Package data
must live inside the package, so the build copies that file to
``keyfob/server/static/keyfob.js`` in the wheel; git never holds a second copy, and a
checkout's server reads the source itself (``keyfob.server.routes_wellknown``). The sdist
carries the source (MANIFEST.in), so a wheel built from the sdist gets it too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

KEYFOB_JS = Path(__file__).resolve().parent / "clients" / "js" / "keyfob.js"


class BuildPyWithKeyfobJs(build_py):
    """``build_py`` that also copies the one keyfob.js into the built package."""

    def run(self) -> None:
        super().run()
        if not KEYFOB_JS.is_file():
            raise FileNotFoundError(f"{KEYFOB_JS} is missing: the server would ship no keyfob.js")
        target = Path(self.build_lib, "keyfob", "server", "static", "keyfob.js")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(KEYFOB_JS, target)


setup(cmdclass={"build_py": BuildPyWithKeyfobJs})
