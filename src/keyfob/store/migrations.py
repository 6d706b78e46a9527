"""Schema migrations: numbered ``.sql`` files per dialect and a ledger table.

The files live in ``keyfob/store/migrations/<dialect>/NNNN_name.sql`` (``0001_initial.sql``)
and are applied in order, each at most once; the ``keyfob_migrations`` table records
which. This module knows nothing about drivers: it finds the files, checks the ledger a
store read against them and says what to apply. Each store runs the plan inside one
transaction of its own driver, holding the database's write lock, so two processes
opening a fresh database at once apply every migration exactly once.

A database that records a migration this code does not have (it was written by a newer
keyfob) is refused rather than guessed at.
"""

# S608 flags SQL built with f-strings; here only the ledger's own table name and the
# driver's placeholders are spliced in, never a value.
# ruff: noqa: S608

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

from ..exceptions import StoreIntegrityError

__all__ = [
    "LEDGER_DDL",
    "LEDGER_SELECT",
    "LEDGER_TABLE",
    "Migration",
    "ledger_insert",
    "load_migrations",
    "pending_migrations",
]

LEDGER_TABLE = "keyfob_migrations"

#: Creates the ledger; the same text is valid SQLite and PostgreSQL.
LEDGER_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ("
    "version INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL, "
    "applied_at DOUBLE PRECISION NOT NULL)"
)

#: Reads the ledger as ``(version, name)`` rows.
LEDGER_SELECT = f"SELECT version, name FROM {LEDGER_TABLE} ORDER BY version"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def ledger_insert(placeholders: Sequence[str]) -> str:
    """The statement recording one applied migration, in the driver's parameter style.

    ``ledger_insert(["?", "?", "?"])`` for sqlite3, ``ledger_insert(["$1", "$2", "$3"])``
    for asyncpg; the parameters are ``(version, name, applied_at)``.
    """
    if len(placeholders) != 3:
        raise ValueError("the ledger insert takes three parameters: version, name, applied_at")
    version, name, applied_at = placeholders
    return (
        f"INSERT INTO {LEDGER_TABLE} (version, name, applied_at) "
        f"VALUES ({version}, {name}, {applied_at})"
    )


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change: ``0001_initial.sql`` is version 1 named ``0001_initial``."""

    version: int
    name: str
    sql: str = field(repr=False)


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect`` (a directory name), in version order."""
    folder = resources.files(__package__ or "keyfob.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    if not folder.is_dir():
        raise ValueError(f"no migrations for the dialect {dialect!r}")
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise ValueError(
                f"badly named migration {dialect}/{entry.name} (expected NNNN_name.sql)"
            )
        found.append(
            Migration(
                version=int(match.group(1)),
                name=entry.name.removesuffix(".sql"),
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        names = ", ".join(m.name for m in found)
        raise ValueError(
            f"{dialect} migrations must be numbered 0001, 0002, … without gaps: {names}"
        )
    return found


def pending_migrations(
    available: Sequence[Migration], applied: Mapping[int, str]
) -> list[Migration]:
    """The migrations of ``available`` not yet in the ledger ``applied`` (version → name).

    :class:`StoreIntegrityError` if the ledger names a migration differently or records
    one this code does not know: the schema is not the one this keyfob expects.
    """
    known = {m.version: m for m in available}
    for version, name in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise StoreIntegrityError(
                f"the database has migration {name} applied, which this version of keyfob "
                "does not know: it was created by a newer keyfob"
            )
        if migration.name != name:
            raise StoreIntegrityError(
                f"the database records migration {version} as {name}, but this keyfob "
                f"calls it {migration.name}"
            )
    return [m for m in available if m.version not in applied]
