"""keyfob's Prometheus metrics: counted inline with plain integers, exported at scrape time.

Why not ``prometheus_client``'s ``Counter.inc()`` on the request path: each call takes a
lock (and in multiprocess mode writes an mmap'd file), about a microsecond per metric; a
refresh would update four of them. Here a request costs a few dictionary and list
updates on one :class:`Recorder` (no lock: one event loop per process, and the
increments never ``await``), measured by ``bench/metrics_overhead.py``. The
:class:`KeyfobCollector` turns the numbers into metric families when Prometheus scrapes,
and ``prometheus_client`` only formats them.

Several worker processes (``keyfob serve --workers N``): each flushes its
:meth:`Recorder.snapshot` into ``<metrics dir>/<pid>.json`` every few seconds and when
it stops (:mod:`.metrics_files`); a scrape sums the files of every process that ever ran
(counters of a worker that died stay counted, as in ``prometheus_client``'s own
multiprocess mode) with the answering process's live numbers.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

__all__ = [
    "LATENCY_BUCKETS",
    "REFRESH_ROUTE",
    "TIMED_ROUTES",
    "Recorder",
    "RouteStats",
    "Snapshot",
    "merge_snapshots",
]

#: Upper bounds (seconds) of the latency histograms: a refresh takes ~0.2 ms on an idle
#: server, a login tens of milliseconds (argon2), so the buckets span both.
LATENCY_BUCKETS: Final = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

#: The refresh route: its ``ok`` refreshes are its 200 answers.
REFRESH_ROUTE: Final = "/auth/refresh"

#: The routes with a latency histogram (the ``route`` label of ``keyfob_request_seconds``).
TIMED_ROUTES: Final = frozenset({"/auth/refresh", "/auth/login", "/oauth/token"})

#: A snapshot: plain JSON-able data, what a worker writes to its file.
Snapshot = dict[str, Any]

# Counter names → their label names, in order. Values are keyed by label-value tuples.
COUNTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "keyfob_http_requests_total": ("route", "status"),
    "keyfob_logins_total": ("result",),
    "keyfob_refreshes_total": ("result", "reason"),
    "keyfob_reuse_detections_total": ("rule",),
    "keyfob_revocations_total": ("reason",),
    "keyfob_rate_limited_total": ("route",),
    "keyfob_store_errors_total": ("kind",),
}


class RouteStats:
    """One route's answers by status and, for :data:`TIMED_ROUTES`, its latency buckets.

    Kept per route so that a request costs one lookup here and a few integer updates."""

    __slots__ = ("counts", "statuses", "total")

    def __init__(self, timed: bool) -> None:
        self.statuses: dict[int, int] = {}
        # One slot per bucket plus +Inf, not cumulative (cumulated when exported).
        self.counts: list[int] | None = [0] * (len(LATENCY_BUCKETS) + 1) if timed else None
        self.total = 0.0

    def observe(self, status: int, seconds: float) -> None:
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        counts = self.counts
        if counts is not None:
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.total += seconds


class Recorder:
    """One process's numbers. Updated inline by the request observer and the
    security-event listener; read by the collector and the file flusher."""

    def __init__(self) -> None:
        #: Counters by name, then by label values. ``keyfob_http_requests_total`` and the
        #: ``ok`` refreshes are not here: they are the routes' status counts.
        self.counters: dict[str, dict[tuple[str, ...], int]] = {name: {} for name in COUNTERS}
        self.routes: dict[str, RouteStats] = {}
        #: (value, unix time of the sample) of the live-session count, or None.
        self.live_sessions: tuple[int, float] | None = None

    def count(self, name: str, labels: tuple[str, ...], amount: int = 1) -> None:
        values = self.counters[name]
        values[labels] = values.get(labels, 0) + amount

    def route(self, route: str) -> RouteStats:
        """The stats of ``route`` (a template), created on first use."""
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats(route in TIMED_ROUTES)
        return stats

    def observe_latency(self, route: str, seconds: float, status: int = 200) -> None:
        self.route(route).observe(status, seconds)

    def set_live_sessions(self, value: int, at: float | None = None) -> None:
        self.live_sessions = (value, time.time() if at is None else at)

    def snapshot(self) -> Snapshot:
        """The numbers as JSON-able data (see :func:`merge_snapshots`)."""
        counters = {name: dict(values) for name, values in self.counters.items()}
        requests = counters["keyfob_http_requests_total"]
        refreshes = counters["keyfob_refreshes_total"]
        histograms: dict[str, Any] = {}
        for route, stats in list(self.routes.items()):
            for status, n in list(stats.statuses.items()):
                key = (route, str(status))
                requests[key] = requests.get(key, 0) + n
            if route == REFRESH_ROUTE and 200 in stats.statuses:
                refreshes[("ok", "")] = refreshes.get(("ok", ""), 0) + stats.statuses[200]
            if stats.counts is not None:
                histograms[route] = {"counts": list(stats.counts), "sum": stats.total}
        for route in TIMED_ROUTES:
            histograms.setdefault(route, {"counts": [0] * (len(LATENCY_BUCKETS) + 1), "sum": 0.0})
        return {
            "counters": {
                name: [[list(labels), value] for labels, value in values.items()]
                for name, values in counters.items()
            },
            "histograms": histograms,
            "live_sessions": None if self.live_sessions is None else list(self.live_sessions),
        }


def merge_snapshots(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Sum the counters and histograms; keep the newest live-session sample."""
    counters: dict[str, dict[tuple[str, ...], int]] = {name: {} for name in COUNTERS}
    histograms: dict[str, dict[str, Any]] = {}
    live: list[float] | None = None
    for snap in snapshots:
        for name, rows in snap.get("counters", {}).items():
            if name not in counters:
                continue
            into = counters[name]
            for labels, value in rows:
                key = tuple(str(v) for v in labels)
                into[key] = into.get(key, 0) + int(value)
        for route, hist in snap.get("histograms", {}).items():
            counts = [int(c) for c in hist["counts"]]
            if len(counts) != len(LATENCY_BUCKETS) + 1:
                continue  # written by a keyfob with other buckets
            mine = histograms.setdefault(route, {"counts": [0] * len(counts), "sum": 0.0})
            mine["counts"] = [a + b for a, b in zip(mine["counts"], counts, strict=True)]
            mine["sum"] += float(hist["sum"])
        sample = snap.get("live_sessions")
        if sample is not None and (live is None or sample[1] > live[1]):
            live = [float(sample[0]), float(sample[1])]
    return {
        "counters": {
            name: [[list(k), v] for k, v in values.items()] for name, values in counters.items()
        },
        "histograms": histograms,
        "live_sessions": live,
    }


_HELP: Final[Mapping[str, str]] = {
    "keyfob_http_requests_total": "HTTP requests answered, by route template and status",
    "keyfob_logins_total": "logins, by result (ok, failed)",
    "keyfob_refreshes_total": "refreshes at /auth/refresh, by result and reason class",
    "keyfob_reuse_detections_total": "refresh-token reuse detections, by rule",
    "keyfob_revocations_total": "session revocations, by reason",
    "keyfob_rate_limited_total": "requests refused by a rate limit (429), by route",
    "keyfob_store_errors_total": "store errors seen by requests, by kind (unavailable, error)",
}


def metric_families(snapshot: Snapshot) -> Iterator[Any]:
    """``prometheus_client`` metric families of a (merged) snapshot."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    for name, labels in COUNTERS.items():
        # prometheus_client adds the _total suffix itself.
        family = CounterMetricFamily(name.removesuffix("_total"), _HELP[name], labels=labels)
        for values, value in snapshot["counters"].get(name, []):
            family.add_metric(values, value)
        yield family
    latency = HistogramMetricFamily(
        "keyfob_request_seconds",
        "latency of the refresh, login and token endpoints, in seconds",
        labels=("route",),
    )
    for route, hist in sorted(snapshot["histograms"].items()):
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), hist["counts"], strict=True):
            cumulative += count
            buckets.append((_bound_text(bound), cumulative))
        latency.add_metric([route], buckets, hist["sum"])
    yield latency
    live = snapshot.get("live_sessions")
    if live is not None:
        gauge = GaugeMetricFamily(
            "keyfob_live_sessions",
            "sessions in the store, sampled periodically (see keyfob_live_sessions_sampled)",
        )
        gauge.add_metric([], live[0])
        yield gauge
        sampled = GaugeMetricFamily(
            "keyfob_live_sessions_sampled",
            "unix time of the keyfob_live_sessions sample",
        )
        sampled.add_metric([], live[1])
        yield sampled


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
