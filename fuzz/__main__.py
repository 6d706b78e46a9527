"""``python -m fuzz``: list, run, replay and seed the fuzz targets (see :mod:`fuzz`)."""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .targets import CORPUS_DIR, NAMES, REGRESSIONS_DIR, load

# libFuzzer options every bounded run gets: one slow input is a finding (a parser that
# takes seconds on a few KiB is a denial of service), and so is runaway memory.
_PER_INPUT_TIMEOUT = 10
_RSS_LIMIT_MB = 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the targets")
    run = commands.add_parser("run", help="fuzz one target under atheris (libFuzzer options pass)")
    run.add_argument("target", choices=NAMES)
    run.add_argument("libfuzzer", nargs=argparse.REMAINDER)
    every = commands.add_parser("all", help="fuzz each target for a bounded time, one by one")
    every.add_argument("--seconds", type=int, default=10, help="per target (default 10)")
    every.add_argument(
        "--artifacts",
        type=Path,
        default=REGRESSIONS_DIR,
        help="where inputs that break a contract are saved, per target "
        "(default fuzz/regressions, so that they become regression cases)",
    )
    every.add_argument("targets", nargs="*", help=f"default: all of {', '.join(NAMES)}")
    replay = commands.add_parser("replay", help="run inputs through a target's checks, no atheris")
    replay.add_argument("target", choices=NAMES)
    replay.add_argument("files", nargs="+", type=Path)
    commands.add_parser("seeds", help="rewrite fuzz/corpus from each target's seeds()")
    args = parser.parse_args(argv)

    if args.command == "list":
        print("\n".join(NAMES))
        return 0
    if args.command == "run":
        return _run(args.target, args.libfuzzer)
    if args.command == "all":
        unknown = set(args.targets) - set(NAMES)
        if unknown:
            parser.error(f"no such target: {', '.join(sorted(unknown))}")
        return _run_all(args.targets or list(NAMES), args.seconds, args.artifacts)
    if args.command == "replay":
        target = load(args.target)
        for path in args.files:
            target.check(path.read_bytes())
            print(f"{path}: contract holds")
        return 0
    return _write_seeds()


def _run(name: str, libfuzzer_args: list[str]) -> int:
    # Only a fuzzing run needs atheris; replay and the tests do not. (No type stubs in
    # the lock: types-atheris would be a dependency for three calls.)
    import atheris  # type: ignore[import-untyped]

    # Instrument keyfob as the target imports it: coverage feedback comes from there.
    with atheris.instrument_imports(include=["keyfob"]):
        target = load(name)
    atheris.Setup([sys.argv[0], *libfuzzer_args], target.check)
    atheris.Fuzz()
    return 0  # not reached: atheris exits the process


def _run_all(names: list[str], seconds: int, artifacts: Path) -> int:
    failed: list[str] = []
    for name in names:
        started = time.monotonic()
        out_dir = artifacts / name
        out_dir.mkdir(parents=True, exist_ok=True)
        before = set(out_dir.iterdir())
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as work:
            # New inputs go to the first directory, a scratch one: the committed
            # corpus and regression cases are read, never written.
            command = [
                sys.executable, "-m", "fuzz", "run", name,
                f"-max_total_time={seconds}", f"-timeout={_PER_INPUT_TIMEOUT}",
                f"-rss_limit_mb={_RSS_LIMIT_MB}", f"-artifact_prefix={out_dir}{os.sep}",
                "-print_final_stats=0", work,
                *(str(d) for d in (CORPUS_DIR / name, REGRESSIONS_DIR / name) if d.is_dir()),
            ]  # fmt: skip
            result = subprocess.run(
                command,
                cwd=Path(__file__).resolve().parent.parent,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # atheris prints the traceback on stdout
                text=True,
                errors="replace",
                check=False,
            )
        found = sorted(set(out_dir.iterdir()) - before)
        took = time.monotonic() - started
        if result.returncode == 0 and not found:
            print(f"fuzz {name}: contract held for {seconds} s ({took:.0f} s with startup)")
            continue
        failed.append(name)
        print(f"fuzz {name}: FAILED (exit {result.returncode})\n{_tail(result.stdout)}")
        for path in found:
            data = path.read_bytes()
            print(f"  saved {path} ({len(data)} bytes): base64 {base64.b64encode(data)[:400]!r}")
        if not found:
            _remove_empty(out_dir)
    if failed:
        print(
            f"contracts broken: {', '.join(failed)}. Replay a saved input with "
            "`python -m fuzz replay TARGET FILE`; keep it in fuzz/regressions/TARGET/ "
            "once fixed."
        )
        return 1
    for name in names:
        _remove_empty(artifacts / name)
    return 0


def _tail(text: str, lines: int = 40) -> str:
    """The finding in libFuzzer's output: from atheris's Python traceback on, if any."""
    start = text.find("=== Uncaught Python exception")
    found = text[start:] if start >= 0 else text
    return "\n".join(found.splitlines()[:lines] if start >= 0 else found.splitlines()[-lines:])


def _remove_empty(directory: Path) -> None:
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def _write_seeds() -> int:
    for name in NAMES:
        directory = CORPUS_DIR / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for index, data in enumerate(load(name).seeds()):
            (directory / f"seed-{index:02d}").write_bytes(data)
        print(f"{directory}: {index + 1} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
