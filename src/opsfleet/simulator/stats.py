"""Call statistics: mergeable latency histograms, per-method counters, per-second curves.

Everything here is plain data (picklable, so worker processes can send it to the parent)
and pure functions. Memory stays bounded however long a run is: latencies go into
logarithmic buckets (2 % wide) rather than a list, curves hold one integer per second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

GROWTH = 1.02
"""Bucket ``i`` holds latencies in (GROWTH**(i-1), GROWTH**i] microseconds: 2 % resolution."""
_LOG_GROWTH = math.log(GROWTH)

OK = "OK"

CURVE_CALLS = "calls"
CURVE_ERRORS = "errors"
CURVE_REGISTRATIONS = "registrations"
CURVE_RECOVERIES = "recoveries"
CURVE_CONFIG_FETCHES = "config_fetches"
CURVES = (CURVE_CALLS, CURVE_ERRORS, CURVE_REGISTRATIONS, CURVE_RECOVERIES, CURVE_CONFIG_FETCHES)
CONFIG_METHOD = "GetConfig"
"""Per-second counts: successful calls, failed calls, successful registrations, and nodes
whose first successful call after a failure happened in that second (the reconnect curve)."""

Curve = dict[int, int]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100] of ascending ``sorted_values``; 0.0 when empty."""
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if not sorted_values:
        return 0.0
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def bucket_of(seconds: float) -> int:
    micros = seconds * 1e6
    if micros <= 1.0:
        return 0
    return math.ceil(math.log(micros) / _LOG_GROWTH)


def bucket_upper(index: int) -> float:
    """The largest latency (seconds) that falls into bucket ``index``."""
    return float(GROWTH**index / 1e6)


@dataclass
class Histogram:
    """Latencies in seconds. Percentiles are at most 2 % above the exact value, never below."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    max: float = 0.0

    def add(self, seconds: float) -> None:
        index = bucket_of(seconds)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def merge(self, other: Histogram) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile ``q`` (0..100]; 0.0 when empty."""
        if not 0.0 < q <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {q}")
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(bucket_upper(index), self.max)
        return self.max


@dataclass
class MethodStats:
    """One RPC method: calls, successes, failures by status code, latency of successful calls."""

    calls: int = 0
    ok: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)

    @property
    def errors(self) -> int:
        return self.calls - self.ok

    def record(self, code: str, seconds: float) -> None:
        self.calls += 1
        if code == OK:
            self.ok += 1
            self.latency.add(seconds)
        else:
            self.codes[code] = self.codes.get(code, 0) + 1

    def merge(self, other: MethodStats) -> None:
        self.calls += other.calls
        self.ok += other.ok
        for code, n in other.codes.items():
            self.codes[code] = self.codes.get(code, 0) + n
        self.latency.merge(other.latency)


def add_curve(into: Curve, other: Mapping[int, int]) -> None:
    for second, n in other.items():
        into[second] = into.get(second, 0) + n


def curve_list(curve: Mapping[int, int], length: int | None = None) -> list[int]:
    """Dense per-second list from second 0 to ``length - 1`` (default: the last non-empty second)."""
    if length is None:
        length = max(curve, default=-1) + 1
    return [curve.get(second, 0) for second in range(length)]


@dataclass(frozen=True)
class Progress:
    """Cumulative counters one worker sends to the parent every second."""

    worker_id: int
    calls: int
    errors: int
    registered_nodes: int
    enrolled_nodes: int = 0


@dataclass
class WorkerReport:
    """Everything one worker measured. ``window_calls`` counts calls inside the measurement
    window of ``window_seconds`` (saturate mode leaves the initial registrations out)."""

    worker_id: int
    nodes: int
    registered_nodes: int
    failing_nodes: int
    """Nodes whose last call failed when the run ended."""
    window_seconds: float
    window_calls: dict[str, int]
    methods: dict[str, MethodStats]
    curves: dict[str, Curve]


class Recorder:
    """Collects one worker's calls. One owner (the worker's event loop); not thread-safe.

    Curve seconds count from ``t0`` (a wall-clock time shared by all workers).
    """

    def __init__(self, t0: float, clock: Callable[[], float] = time.time) -> None:
        self._t0 = t0
        self._clock = clock
        self.methods: dict[str, MethodStats] = {}
        self.curves: dict[str, Curve] = {name: {} for name in CURVES}
        self.calls = 0
        self.errors = 0
        self._window_start = t0
        self._window_end: float | None = None
        self._calls_at_start: dict[str, int] = {}
        self._calls_at_end: dict[str, int] | None = None

    def _second(self) -> int:
        return max(0, int(self._clock() - self._t0))

    def _bump(self, curve: str) -> None:
        points = self.curves[curve]
        second = self._second()
        points[second] = points.get(second, 0) + 1

    def record(self, method: str, code: str, seconds: float, *, registration: bool = False) -> None:
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        stats.record(code, seconds)
        self.calls += 1
        if code == OK:
            self._bump(CURVE_CALLS)
            if registration:
                self._bump(CURVE_REGISTRATIONS)
            elif method == CONFIG_METHOD:
                self._bump(CURVE_CONFIG_FETCHES)
        else:
            self.errors += 1
            self._bump(CURVE_ERRORS)

    def recovered(self) -> None:
        """A node succeeded after one or more failed calls."""
        self._bump(CURVE_RECOVERIES)

    def start_window(self) -> None:
        """Start measuring throughput now (the default start is ``t0``)."""
        self._window_start = self._clock()
        self._calls_at_start = {m: s.calls for m, s in self.methods.items()}

    def end_window(self) -> None:
        """Stop measuring throughput; calls after this still count for latency and errors."""
        if self._window_end is None:
            self._window_end = self._clock()
            self._calls_at_end = {m: s.calls for m, s in self.methods.items()}

    def progress(self, worker_id: int, registered_nodes: int, enrolled_nodes: int = 0) -> Progress:
        return Progress(worker_id, self.calls, self.errors, registered_nodes, enrolled_nodes)

    def report(
        self, worker_id: int, nodes: int, registered_nodes: int, failing_nodes: int = 0
    ) -> WorkerReport:
        self.end_window()
        end_counts = self._calls_at_end or {}
        window_calls = {m: n - self._calls_at_start.get(m, 0) for m, n in end_counts.items()}
        end = self._window_end if self._window_end is not None else self._clock()
        return WorkerReport(
            worker_id=worker_id,
            nodes=nodes,
            registered_nodes=registered_nodes,
            failing_nodes=failing_nodes,
            window_seconds=max(0.0, end - self._window_start),
            window_calls=window_calls,
            methods=self.methods,
            curves=self.curves,
        )


@dataclass
class Aggregate:
    """All workers' reports merged. ``rates`` is calls/s per method within the windows."""

    workers: int = 0
    nodes: int = 0
    registered_nodes: int = 0
    failing_nodes: int = 0
    window_seconds: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    methods: dict[str, MethodStats] = field(default_factory=dict)
    curves: dict[str, Curve] = field(default_factory=lambda: {name: {} for name in CURVES})

    @property
    def total_rate(self) -> float:
        return sum(self.rates.values())

    def codes(self) -> dict[str, int]:
        """Failed calls by status code over all methods."""
        out: dict[str, int] = {}
        for stats in self.methods.values():
            for code, n in stats.codes.items():
                out[code] = out.get(code, 0) + n
        return dict(sorted(out.items()))


def merge_reports(reports: Iterable[WorkerReport]) -> Aggregate:
    """Merge worker reports. Workers measure over (nearly) the same window, so the fleet's
    rate for a method is the sum of the workers' rates."""
    agg = Aggregate()
    for report in reports:
        agg.workers += 1
        agg.nodes += report.nodes
        agg.registered_nodes += report.registered_nodes
        agg.failing_nodes += report.failing_nodes
        agg.window_seconds = max(agg.window_seconds, report.window_seconds)
        for method, stats in report.methods.items():
            agg.methods.setdefault(method, MethodStats()).merge(stats)
        for method, n in report.window_calls.items():
            rate = n / report.window_seconds if report.window_seconds > 0 else 0.0
            agg.rates[method] = agg.rates.get(method, 0.0) + rate
        for name, curve in report.curves.items():
            add_curve(agg.curves.setdefault(name, {}), curve)
    return agg
