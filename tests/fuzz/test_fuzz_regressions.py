"""Every committed fuzz input (the seed corpus and the saved regression cases) still
satisfies its target's contract, replayed with plain Python: no atheris, milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.data import Reader, Writer
from fuzz.targets import CORPUS_DIR, NAMES, REGRESSIONS_DIR, load


def _inputs() -> list[tuple[str, Path]]:
    return [(name, path) for name in NAMES for path in load(name).inputs()]


@pytest.mark.parametrize(
    ("target", "path"),
    _inputs(),
    ids=[f"{name}/{path.parent.parent.name}/{path.name}" for name, path in _inputs()],
)
def test_committed_input_keeps_the_contract(target: str, path: Path) -> None:
    """A seed or a saved finding runs through its target's checks without breaking them."""
    load(target).check(path.read_bytes())


@pytest.mark.parametrize("target", NAMES)
def test_committed_corpus_is_what_the_seeds_write(target: str) -> None:
    """fuzz/corpus/<target> holds exactly the target's seeds() (`python -m fuzz seeds`)."""
    committed = sorted(p.read_bytes() for p in (CORPUS_DIR / target).iterdir())
    assert committed == sorted(load(target).seeds())


def test_every_regression_directory_names_a_target() -> None:
    """A regression case filed under a misspelt target would never be replayed."""
    if REGRESSIONS_DIR.is_dir():
        assert {p.name for p in REGRESSIONS_DIR.iterdir()} <= set(NAMES)


@pytest.mark.parametrize("target", NAMES)
@pytest.mark.parametrize("size", [0, 1, 7, 64, 700])
def test_any_bytes_are_an_input(target: str, size: int) -> None:
    """Short, empty and patterned inputs are all valid inputs (the reader pads with zeros)."""
    check = load(target).check
    check(bytes(size))
    check(bytes(range(256)) * (size // 256) + bytes(range(size % 256)))
    check(b"\xff" * size)


def test_writer_builds_what_the_reader_reads() -> None:
    """Seeds are written with Writer; each value comes back from Reader unchanged."""
    data = (
        Writer()
        .byte(200)
        .boolean(True)
        .integer(-5, 300, 299)
        .pick(("a", "b", "c"), "c")
        .raw(10, b"xyz")
        .text(40, "héllo")
        .rest_text("the rest")
        .build()
    )
    r = Reader(data)
    assert r.byte() == 200
    assert r.boolean() is True
    assert r.integer(-5, 300) == 299
    assert r.pick(("a", "b", "c")) == "c"
    assert r.raw(10) == b"xyz"
    assert r.text(40) == "héllo"
    assert r.rest_text() == "the rest"
    assert r.integer(0, 9) == 0 and r.raw(5) == b"", "an exhausted reader answers its minimum"
