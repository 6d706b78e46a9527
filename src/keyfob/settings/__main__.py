"""``python -m keyfob.settings --markdown``: print the docs' ``KEYFOB_*`` table."""

from __future__ import annotations

import argparse

from .markdown import TABLE_BEGIN, TABLE_END, settings_table

parser = argparse.ArgumentParser(prog="python -m keyfob.settings", description=__doc__)
parser.add_argument(
    "--markdown",
    action="store_true",
    required=True,
    help="print the KEYFOB_* table, with its marker comments, as README.md and docs/cli.md hold it",
)
parser.parse_args()
print(f"{TABLE_BEGIN}\n{settings_table()}{TABLE_END}")
