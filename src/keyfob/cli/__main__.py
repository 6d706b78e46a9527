"""``python -m keyfob.cli``: the ``keyfob`` command."""

from __future__ import annotations

from . import main

main()
