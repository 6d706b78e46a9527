"""The front door: everything in keyfob.__all__ exists, is sorted, and is documented."""

from __future__ import annotations

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
