"""Percentiles, the latency histogram, and merging what several workers recorded."""

from __future__ import annotations

import random

import pytest

from opsfleet.simulator.stats import (
    CURVE_CALLS,
    CURVE_ERRORS,
    CURVE_RECOVERIES,
    CURVE_REGISTRATIONS,
    Histogram,
    MethodStats,
    Recorder,
    WorkerReport,
    bucket_of,
    bucket_upper,
    curve_list,
    merge_reports,
    percentile,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0.1) == 1.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 75) == 3.0
    assert percentile([], 50) == 0.0


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)
    with pytest.raises(ValueError):
        Histogram().percentile(q)


def test_buckets_bound_their_values() -> None:
    for seconds in (1e-7, 1e-6, 2.5e-6, 0.000123, 0.01, 0.5, 3.0, 120.0):
        index = bucket_of(seconds)
        assert seconds <= bucket_upper(index) * (1 + 1e-12)
        if index > 0:
            assert seconds > bucket_upper(index - 1)


def test_histogram_percentiles_within_two_percent_and_never_below() -> None:
    rand = random.Random(42)
    values = [rand.lognormvariate(-6.0, 1.2) for _ in range(20_000)]
    hist = Histogram()
    for v in values:
        hist.add(v)
    exact = sorted(values)
    for q in (50, 90, 99, 99.9, 100):
        estimate = hist.percentile(q)
        assert percentile(exact, q) <= estimate <= percentile(exact, q) * 1.02 + 1e-12, q
    assert hist.max == max(values)
    assert hist.count == len(values)
    assert hist.mean == pytest.approx(sum(values) / len(values))
    assert Histogram().percentile(99) == 0.0


def test_histogram_merge_equals_one_histogram() -> None:
    rand = random.Random(1)
    values = [rand.uniform(0.0001, 0.2) for _ in range(5000)]
    whole, a, b = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(values):
        whole.add(v)
        (a if i % 3 else b).add(v)
    a.merge(b)
    assert a.buckets == whole.buckets
    assert a.count == whole.count
    assert a.max == whole.max
    assert a.percentile(99) == whole.percentile(99)


def test_method_stats_latency_counts_only_successes() -> None:
    stats = MethodStats()
    stats.record("OK", 0.010)
    stats.record("OK", 0.020)
    stats.record("UNAVAILABLE", 5.0)
    stats.record("UNAVAILABLE", 0.001)
    stats.record("NOT_FOUND", 0.001)
    assert (stats.calls, stats.ok, stats.errors) == (5, 2, 3)
    assert stats.codes == {"UNAVAILABLE": 2, "NOT_FOUND": 1}
    assert stats.latency.count == 2
    assert stats.latency.max == 0.020


def test_recorder_curves_and_window() -> None:
    clock = FakeClock(1000.0)
    rec = Recorder(t0=1000.0, clock=clock)
    rec.record("RegisterNode", "OK", 0.01, registration=True)
    clock.now = 1001.5
    rec.record("RegisterNode", "OK", 0.01, registration=True)
    rec.start_window()
    rec.record("Heartbeat", "OK", 0.001)
    clock.now = 1003.2
    rec.record("Heartbeat", "UNAVAILABLE", 0.001)
    rec.recovered()
    clock.now = 1005.5
    rec.end_window()
    rec.record("Heartbeat", "OK", 0.001)  # after the window: counted, but not in the rate
    report = rec.report(worker_id=3, nodes=2, registered_nodes=2, failing_nodes=0)
    assert report.curves[CURVE_REGISTRATIONS] == {0: 1, 1: 1}
    assert report.curves[CURVE_CALLS] == {0: 1, 1: 2, 5: 1}
    assert report.curves[CURVE_ERRORS] == {3: 1}
    assert report.curves[CURVE_RECOVERIES] == {3: 1}
    assert report.window_seconds == pytest.approx(4.0)
    assert report.window_calls == {"RegisterNode": 0, "Heartbeat": 2}
    assert report.methods["Heartbeat"].calls == 3
    assert rec.progress(3, 2).calls == 5
    assert rec.progress(3, 2).errors == 1


def _worker(
    worker_id: int, window: float, hb_calls: int, hb_latency: float, codes: dict[str, int]
) -> WorkerReport:
    hb = MethodStats()
    for _ in range(hb_calls):
        hb.record("OK", hb_latency)
    for code, n in codes.items():
        for _ in range(n):
            hb.record(code, 0.0)
    reg = MethodStats()
    reg.record("OK", 0.05)
    return WorkerReport(
        worker_id=worker_id,
        nodes=10,
        registered_nodes=10,
        failing_nodes=worker_id,
        window_seconds=window,
        window_calls={"Heartbeat": hb_calls + sum(codes.values()), "RegisterNode": 0},
        methods={"Heartbeat": hb, "RegisterNode": reg},
        curves={
            CURVE_CALLS: {0: hb_calls},
            CURVE_REGISTRATIONS: {0: 1, 7: 2},
            CURVE_ERRORS: {},
            CURVE_RECOVERIES: {},
        },
    )


def test_merge_reports_across_workers() -> None:
    a = _worker(0, window=10.0, hb_calls=1000, hb_latency=0.002, codes={"UNAVAILABLE": 5})
    b = _worker(1, window=9.5, hb_calls=950, hb_latency=0.004, codes={"UNAVAILABLE": 1, "NOT_FOUND": 2})
    agg = merge_reports([a, b])
    assert agg.workers == 2
    assert agg.nodes == 20
    assert agg.registered_nodes == 20
    assert agg.failing_nodes == 1
    assert agg.window_seconds == 10.0
    assert agg.rates["Heartbeat"] == pytest.approx(1005 / 10.0 + 953 / 9.5)
    assert agg.rates["RegisterNode"] == 0.0
    assert agg.total_rate == pytest.approx(agg.rates["Heartbeat"])
    hb = agg.methods["Heartbeat"]
    assert (hb.calls, hb.ok) == (1958, 1950)
    assert hb.codes == {"UNAVAILABLE": 6, "NOT_FOUND": 2}
    assert agg.codes() == {"NOT_FOUND": 2, "UNAVAILABLE": 6}
    assert hb.latency.max == 0.004
    assert hb.latency.percentile(50) == pytest.approx(0.002, rel=0.02)
    assert hb.latency.percentile(99) == pytest.approx(0.004, rel=0.02)
    assert agg.curves[CURVE_CALLS] == {0: 1950}
    assert agg.curves[CURVE_REGISTRATIONS] == {0: 2, 7: 4}
    # merging must not alias the workers' own data
    assert a.methods["Heartbeat"].calls == 1005


def test_merge_of_nothing_is_empty() -> None:
    agg = merge_reports([])
    assert agg.workers == 0
    assert agg.total_rate == 0.0
    assert agg.codes() == {}


def test_curve_list() -> None:
    assert curve_list({0: 2, 3: 1}) == [2, 0, 0, 1]
    assert curve_list({0: 2, 3: 1}, 6) == [2, 0, 0, 1, 0, 0]
    assert curve_list({}) == []
