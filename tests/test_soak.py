"""The soak test (bench/soak.py, scripts/soak): its judgement of "flat" and of every
answer, and a 60 s run against a real `keyfob serve` (slow; ten minutes before a
release: `scripts/soak --duration 600`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench.soak import (
    EXPECTED,
    P99_TOLERANCE,
    RSS_TOLERANCE,
    Answer,
    Ledger,
    Pacer,
    Tolerance,
    judge_flat,
    server_log_errors,
    window_p99s,
)

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


def test_steady_rss_with_noise_is_flat() -> None:
    """Ups and downs of a few MiB around a level, and one spike, are not growth."""
    values = [80 * MiB + (i % 7) * MiB for i in range(60)]
    values[50] = 200 * MiB
    assert judge_flat("RSS", values, RSS_TOLERANCE).flat


def test_rss_that_keeps_growing_is_not_flat() -> None:
    """A leak of 1 KiB per request at 80 requests a second, for ten minutes, fails."""
    values = [80 * MiB + second * 80 * 1024 for second in range(540)]
    verdict = judge_flat("RSS", values, RSS_TOLERANCE)
    assert not verdict.flat and "GREW" in str(verdict)


def test_a_descriptor_per_minute_is_growth() -> None:
    """Descriptors other than sockets may not grow at all beyond the small slack."""
    values = [16 + second // 6 for second in range(540)]
    assert not judge_flat("fds", values, Tolerance(0.0, 8)).flat


def test_p99_is_compared_by_the_medians_of_the_thirds() -> None:
    """A latency that doubles plus 50 ms from the first third to the last is growth; a
    few slow windows in between are not."""
    steady = [0.02] * 30
    steady[10] = steady[20] = 0.9
    assert judge_flat("p99", steady, P99_TOLERANCE).flat
    growing = [0.02 + 0.01 * i for i in range(30)]  # 20 ms to 310 ms
    assert not judge_flat("p99", growing, P99_TOLERANCE).flat


def test_too_few_samples_is_an_error_not_a_pass() -> None:
    """A run too short to have thirds after the warm-up cannot be judged flat."""
    with pytest.raises(ValueError, match="run longer"):
        judge_flat("RSS", [1.0, 2.0], RSS_TOLERANCE)


def test_window_p99_leaves_out_password_hashing_and_partial_windows() -> None:
    """Logins are argon2-bound by design; the last window may be cut short by the end."""
    answers = [Answer(10 + i * 0.05, "me", 200, 0.010) for i in range(200)]
    answers += [Answer(10.5, "login", 200, 0.500)]
    answers += [Answer(10 + 10.01, "refresh", 200, 9.0)]  # alone in an unfinished window
    assert window_p99s(answers, since=10, window=5) == [0.010, 0.010]


def test_every_unexpected_answer_is_a_failure() -> None:
    """A status outside a request's expected set, a 5xx or no answer at all fails the run;
    the accounted ones do not."""
    ledger = Ledger()
    assert ledger.record("login", 429, 0.1)
    assert ledger.record("refresh", 200, 0.01)
    assert not ledger.record("refresh", 429, 0.01)
    assert not ledger.record("me", 500, 0.01)
    assert not ledger.record("replay", 0, 10.0, "ReadTimeout")
    assert len(ledger.failures) == 3
    assert ledger.table()["refresh"] == {"200": 1, "429": 1}
    assert all(500 not in statuses for statuses in EXPECTED.values())


def test_server_log_errors_are_found() -> None:
    """A traceback or an ERROR line in the server's log fails the run."""
    log = "INFO: started\nERROR:    Exception in ASGI application\nTraceback (most recent…"
    assert len(server_log_errors(log)) == 2
    assert server_log_errors("WARNING: Invalid HTTP request received.") == []


async def test_pacer_bounds_the_rate() -> None:
    """Twenty events at 200 a second take about a tenth of a second, not none."""
    import time

    pacer = Pacer(200, burst=1)
    started = time.monotonic()
    for _ in range(20):
        await pacer.take()
    assert time.monotonic() - started >= 0.09


@pytest.mark.slow
def test_soak_for_a_minute(tmp_path: Path) -> None:
    """`scripts/soak --duration 60`: every answer accounted for, RSS, descriptors and p99
    flat, nothing logged as an error by the server."""
    report = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "60",
         "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "soak: PASSED" in result.stdout
    assert report.is_file()
