"""Compact metric storage end to end: ingest, raw and rollup history, duplicates, late samples,
split reports, key caches of a second store, node deletion (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

from opsfleet.manager.domain import MetricSample, NodeRegistration
from opsfleet.manager.services.metrics import RawMetric
from opsfleet.manager.store.sql import SqlStore
from tests.integration.manager.support import Running

HOUR = 3600


def _now_hour() -> int:
    """The start of the hour two hours ago: every sample of a test fits in the past."""
    return (int(time.time()) - 2 * HOUR) // HOUR * HOUR


async def _register(r: Running, node_id: str = "n1") -> None:
    await r.app.nodes.register(NodeRegistration(node_id, "h", "10.0.0.1", "linux", "amd64", {}, "1", "1"))


def _cpu(ts: int, usage: float, **extra: float) -> RawMetric:
    return RawMetric("cpu", ts, {"usage_percent": usage, "cores": 8.0, **extra})


async def test_ingest_then_raw_history_and_rollup_charts(running: Running) -> None:
    await _register(running)
    t0 = _now_hour()
    reports = [
        [_cpu(t0 + 60 * i, float(i)), RawMetric("memory", t0 + 60 * i, {"used_bytes": 1e9 + i})]
        for i in range(90)
    ]
    for report in reports:
        assert (await running.app.metrics.ingest("n1", report)).accepted == 2
    queries = running.app.metric_queries
    raw = await queries.history("n1", "cpu", t0, t0 + HOUR)
    assert raw.bucket_seconds == 0
    assert [s.timestamp for s in raw.samples] == [t0 + 60 * i for i in range(61)]
    assert raw.samples[7].values == {"usage_percent": 7.0, "cores": 8.0}

    chart = await queries.history("n1", "cpu", t0 - 86400, t0 + 86400)
    assert chart.bucket_seconds == 300
    assert [b.timestamp for b in chart.buckets] == [t0 + 300 * k for k in range(18)]
    assert chart.buckets[1].samples == 5 and chart.buckets[1].values == {"usage_percent": 7.0, "cores": 8.0}

    month = await queries.history("n1", "memory", t0 - 29 * 86400, t0 + 86400)
    assert month.bucket_seconds == 3600
    assert [(b.timestamp, b.samples) for b in month.buckets] == [(t0, 60), (t0 + HOUR, 30)]
    assert month.buckets[1].values["used_bytes"] == 1e9 + 74.5

    summary = await queries.summary("n1", 30 * 86400)
    cpu_stats, latest = summary["cpu"]
    assert (cpu_stats.min, cpu_stats.max, cpu_stats.samples) == (0.0, 89.0, 90)
    assert cpu_stats.avg == 44.5
    assert latest is not None and latest.timestamp == t0 + 89 * 60


async def test_a_resent_report_counts_once_in_samples_and_rollups(running: Running) -> None:
    await _register(running)
    t0 = _now_hour()
    report = [_cpu(t0 + 60 * i, 10.0) for i in range(5)]
    await running.app.metrics.ingest("n1", report)
    await running.app.metrics.ingest("n1", report)  # the daemon lost the reply and sends it again
    await running.app.metrics.ingest("n1", [*report, _cpu(t0 + 300, 20.0)])  # resent with a new one
    store = running.app.store
    assert await store.count_metrics("n1") == 6
    [(bucket, rollup)] = await store.metrics.rollups("n1", "cpu", 300, t0, t0 + 299)
    assert bucket == t0 and rollup.n == 5
    [(_, hour)] = await store.metrics.rollups("n1", "cpu", 3600, t0, t0 + 10)
    assert hour.n == 6 and hour.stats("usage_percent") == (10.0, 20.0, 70.0, 6)


async def test_late_samples_and_split_reports_merge(running: Running) -> None:
    await _register(running)
    t0 = _now_hour()
    await running.app.metrics.ingest("n1", [_cpu(t0 + 120, 50.0)])
    await running.app.metrics.ingest("n1", [RawMetric("memory", t0 + 120, {"used_bytes": 5.0})])  # same ts
    await running.app.metrics.ingest("n1", [_cpu(t0 + 60, 5.0, steal=1.0)])  # late, with a new key
    store = running.app.store
    assert [s.values for s in await store.query_metrics("n1", "memory", t0, t0 + 300)] == [
        {"used_bytes": 5.0}
    ]
    cpu = await store.query_metrics("n1", "cpu", t0, t0 + 300)
    assert [(s.timestamp, s.values.get("steal")) for s in cpu] == [(t0 + 60, 1.0), (t0 + 120, None)]
    [(_, rollup)] = await store.metrics.rollups("n1", "cpu", 300, t0, t0 + 299)
    assert rollup.n == 2 and rollup.stats("usage_percent") == (5.0, 50.0, 55.0, 2)
    assert rollup.stats("steal") == (1.0, 1.0, 1.0, 1)
    latest = await running.app.metric_queries.latest("n1")
    assert latest["cpu"] is not None and latest["cpu"].timestamp == t0 + 120  # the late one is older
    assert latest["memory"] is not None and latest["memory"].values == {"used_bytes": 5.0}


async def test_a_second_store_reads_and_adds_keys_of_the_first(running: Running) -> None:
    await _register(running)
    t0 = _now_hour()
    await running.app.metrics.ingest("n1", [_cpu(t0, 1.0)])
    other = SqlStore(running.app.store.url)  # another replica: empty key caches
    await other.start()
    try:
        [sample] = await other.query_metrics("n1", "cpu", t0, t0)
        assert sample.values == {"usage_percent": 1.0, "cores": 8.0}
        await other.insert_metrics([MetricSample("n1", "custom.gpu", t0, {"temp_c": 61.5, "fan": 3.0})])
        await other.insert_metrics([MetricSample("n2", "cpu", t0, {"usage_percent": 2.0, "new_key": 1.0})])
    finally:
        await other.close()
    # The first store learns the type and key tuples the other created when it meets them.
    [gpu] = await running.app.store.query_metrics("n1", "custom.gpu", t0, t0)
    assert gpu.values == {"temp_c": 61.5, "fan": 3.0}
    [n2] = await running.app.store.query_metrics("n2", "cpu", t0, t0)
    assert n2.values == {"usage_percent": 2.0, "new_key": 1.0}
    assert await running.app.store.count_metrics() == 3


async def test_deleting_a_node_deletes_its_metrics(running: Running) -> None:
    await _register(running, "gone")
    await _register(running, "kept")
    t0 = _now_hour()
    for node in ("gone", "kept"):
        await running.app.metrics.ingest(node, [_cpu(t0 + 60 * i, 3.0) for i in range(3)])
    await running.app.fleet.delete_node("gone")
    queries = running.app.store.metrics
    assert await running.app.store.count_metrics("gone") == 0
    assert await queries.rollups("gone", "cpu", 300, t0, t0 + HOUR) == []
    assert await queries.latest("gone", "cpu") is None
    assert await running.app.store.count_metrics("kept") == 3
