"""The front door: everything in keyfob.__all__ exists, is sorted, and is documented."""

from __future__ import annotations

import re

import keyfob
import keyfob.exceptions


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and every name in it is importable from keyfob."""
    assert keyfob.__all__ == sorted(keyfob.__all__)
    for name in keyfob.__all__:
        assert hasattr(keyfob, name), name


def test_every_exception_is_exported_and_derives_from_the_base() -> None:
    """Every error class is re-exported at the top and is a KeyfobError."""
    for name in keyfob.exceptions.__all__:
        cls = getattr(keyfob.exceptions, name)
        assert issubclass(cls, keyfob.KeyfobError)
        assert getattr(keyfob, name) is cls


def test_exception_tree_is_drawn_in_the_docstring() -> None:
    """The module docstring names every exception class."""
    doc = keyfob.exceptions.__doc__ or ""
    for name in keyfob.exceptions.__all__:
        assert name in doc, name


def test_exception_tree_drawing_matches_the_classes() -> None:
    """The drawing has every class under its base, with the status and wire code it shows
    being the class's own, shown wherever they differ from the parent's."""
    drawn: list[tuple[int, str, str]] = []
    for line in (keyfob.exceptions.__doc__ or "").splitlines():
        match = re.fullmatch(r"    ((?:[│ ]   )*)([├└]── )?([A-Z]\w+)(.*)", line)
        if match:
            depth = len(match.group(1)) // 4 + (1 if match.group(2) else 0)
            drawn.append((depth, match.group(3), match.group(4)))
    classes = {cls.__name__: cls for cls in _every_error_class()}
    assert sorted(name for _, name, _ in drawn) == sorted(classes)
    parents: list[type[keyfob.KeyfobError]] = []
    for depth, name, note in drawn:
        cls = classes[name]
        del parents[depth:]
        if parents:
            assert cls.__bases__ == (parents[-1],), name
        statuses = re.findall(r"\b[1-5]\d\d\b", note)
        codes = re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", note)
        assert all(int(s) == cls.status_code for s in statuses), name
        assert all(code == cls.error for code in codes), name
        parent = cls.__bases__[0]
        if cls is keyfob.KeyfobError or cls.status_code != parent.status_code:
            assert statuses, f"{name} should show its status"
        if cls is keyfob.KeyfobError or cls.error != parent.error:
            assert codes, f"{name} should show its code"
        parents.append(cls)


def _every_error_class() -> list[type[keyfob.KeyfobError]]:
    found, pending = [], [keyfob.KeyfobError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
