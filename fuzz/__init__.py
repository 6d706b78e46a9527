"""Coverage-guided fuzzing of every keyfob parser that reads outside input (atheris).

Each target (:mod:`fuzz.targets`) turns the fuzzer's bytes into one input of a parser
and checks the parser's *contract*: only the documented exception types escape, and what
it returns obeys the documented rules (a parsed refresh token re-mints to the same text,
a normalized origin is a fixed point, an HTTP answer is never a 5xx, …). A broken
contract is an ``AssertionError`` or the undocumented exception itself; either makes the
fuzzer save the input.

The targets read their bytes through :class:`fuzz.data.Reader`, not atheris's
``FuzzedDataProvider``, so a saved input replays with plain Python:
``tests/fuzz/test_fuzz_regressions.py`` runs every file of ``fuzz/regressions/<target>/``
and ``fuzz/corpus/<target>/`` through the same checks in the normal test run.

    python -m fuzz list                      # the targets
    python -m fuzz run TARGET [libFuzzer options]   # one target, under atheris
    scripts/fuzz --seconds 60                # every target for a bounded time
    python -m fuzz seeds                     # rewrite fuzz/corpus from fuzz/seeds.py
"""
