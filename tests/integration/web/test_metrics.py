"""Metrics: latest samples, raw and bucketed history, summaries, the cluster overview."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.integration.web.support import NOW, Web, expect


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def test_latest(web: Web) -> None:
    await web.register("n1")
    await web.report("n1", "cpu", NOW - 60, usage_percent=10.0)
    await web.report("n1", "cpu", NOW - 30, usage_percent=20.0, user=5.0)
    await web.report("n1", "memory", NOW - 30, usage_percent=40.0)
    data = expect(await web.get("/api/v1/metrics/nodes/n1/latest"), 200, 0)["data"]
    assert set(data) == {"cpu", "memory", "disk", "network"}
    assert data["cpu"] == {
        "type": "cpu",
        "timestamp": NOW - 30,
        "values": {"usage_percent": 20.0, "user": 5.0},
    }
    assert data["memory"]["values"] == {"usage_percent": 40.0}
    assert data["disk"] is None and data["network"] is None


async def test_raw_history(web: Web) -> None:
    await web.register("n1")
    for i in range(5):
        await web.report("n1", "cpu", NOW - 600 + i * 60, usage_percent=float(i), user=1.0)
    data = expect(
        await web.get(
            "/api/v1/metrics/nodes/n1/cpu/history", start_time=iso(NOW - 550), end_time=iso(NOW - 300)
        ),
        200,
        0,
    )["data"]
    assert data["aggregated"] is False and data["bucket_seconds"] == 0
    assert [p["timestamp"] for p in data["points"]] == [NOW - 540, NOW - 480, NOW - 420, NOW - 360]
    assert data["points"][0]["values"] == {"usage_percent": 1.0, "user": 1.0}
    default = expect(await web.get("/api/v1/metrics/nodes/n1/cpu/history"), 200, 0)["data"]
    assert default["count"] == 5  # the last hour up to now


async def test_bucketed_history_averages_every_key(web: Web) -> None:
    await web.register("n1")
    start = NOW - 2 * 86400
    # 2 days read the 5-minute rollups: buckets of 300 s aligned on multiples of 300 s
    first = start - start % 300 + 300
    samples = [(0, 10.0, 1.0), (100, 20.0, 3.0), (360, 50.0, 7.0), (86400, 1.0, 2.0)]
    for offset, usage, user in samples:
        await web.report("n1", "cpu", first + offset, usage_percent=usage, user=user)
    await web.report("n1", "cpu", start - 400, usage_percent=99.0)  # before the range
    data = expect(
        await web.get("/api/v1/metrics/nodes/n1/cpu/history", start_time=iso(start), end_time=iso(NOW)),
        200,
        0,
    )["data"]
    assert data["aggregated"] is True and data["bucket_seconds"] == 300
    assert data["points"] == [
        {"timestamp": first, "values": {"usage_percent": 15.0, "user": 2.0}, "samples": 2},
        {"timestamp": first + 300, "values": {"usage_percent": 50.0, "user": 7.0}, "samples": 1},
        {"timestamp": first + 86400, "values": {"usage_percent": 1.0, "user": 2.0}, "samples": 1},
    ]
    month = expect(
        await web.get(
            "/api/v1/metrics/nodes/n1/cpu/history", start_time=iso(NOW - 30 * 86400), end_time=iso(NOW)
        ),
        200,
        0,
    )["data"]
    assert month["bucket_seconds"] == 3600  # 1-hour rollups: 720 points
    assert sum(p["samples"] for p in month["points"]) == 5


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/api/v1/metrics/nodes/n1/CPU!/history", {}, "metric type"),
        ("/api/v1/metrics/nodes/n1/cpu/history", {"start_time": "yesterday"}, "start_time"),
        ("/api/v1/metrics/nodes/n1/cpu/history", {"end_time": "2024-05-01T10:00:00"}, "end_time"),
        (
            "/api/v1/metrics/nodes/n1/cpu/history",
            {"start_time": iso(NOW), "end_time": iso(NOW - 60)},
            "end_time",
        ),
        ("/api/v1/metrics/nodes/n1/cpu/history", {"start_time": iso(NOW - 731 * 86400)}, "730 days"),
        ("/api/v1/metrics/nodes/n1/summary", {"duration": "soon"}, "duration"),
        ("/api/v1/metrics/nodes/n1/summary", {"duration": "31d"}, "duration"),
    ],
)
async def test_bad_metric_parameters(web_sqlite: Web, path: str, params: dict[str, str], needle: str) -> None:
    await web_sqlite.register("n1")
    assert needle in expect(await web_sqlite.get(path, **params), 400, 1001)["message"]


async def test_summary(web: Web) -> None:
    await web.register("n1")
    for i, usage in enumerate((30.0, 10.0, 20.0)):
        await web.report("n1", "cpu", NOW - 300 + i * 60, usage_percent=usage)
    await web.report("n1", "cpu", NOW - 7200, usage_percent=99.0)  # outside the default hour
    await web.report("n1", "network", NOW - 60, rx_bytes=5.0)
    data = expect(await web.get("/api/v1/metrics/nodes/n1/summary"), 200, 0)["data"]
    assert data["duration"] == 3600.0
    assert data["summary"]["cpu"] == {"min": 10.0, "max": 30.0, "avg": 20.0, "samples": 3, "latest": 20.0}
    assert data["summary"]["network"] == {"min": None, "max": None, "avg": None, "samples": 0, "latest": None}
    wide = expect(await web.get("/api/v1/metrics/nodes/n1/summary", duration="3h"), 200, 0)["data"]
    assert wide["summary"]["cpu"]["max"] == 99.0 and wide["summary"]["cpu"]["samples"] == 4


async def test_cluster_overview(web: Web) -> None:
    now = int(time.time())  # the overview reads the last 15 minutes: not the import-time NOW
    for node_id, cpu, mem in (("a", 10.0, 70.0), ("b", 90.0, 20.0), ("c", 50.0, 30.0)):
        await web.register(node_id)
        await web.report(node_id, "cpu", now - 120, usage_percent=cpu - 5)
        await web.report(node_id, "cpu", now - 60, usage_percent=cpu)
        await web.report(node_id, "memory", now - 60, usage_percent=mem)
    await web.register("quiet")
    data = expect(await web.get("/api/v1/metrics/cluster/overview"), 200, 0)["data"]
    assert data["nodes"] == {"total": 4, "online": 4, "offline": 0}
    assert data["averages"] == {"cpu": 50.0, "memory": 40.0, "disk": None}
    assert [n["node_id"] for n in data["top_cpu"]] == ["b", "c", "a"]
    assert [n["node_id"] for n in data["top_memory"]] == ["a", "c", "b"]
    usage = {n["node_id"]: n for n in data["node_usage"]}
    assert usage["a"]["cpu"] == 10.0 and usage["a"]["updated_at"] == now - 60
    assert usage["quiet"]["cpu"] is None and usage["quiet"]["updated_at"] is None
