"""Retention deletes old samples and rollups, node by node, and keeps recent ones; raw samples
the rollup job has not read yet stay."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opsfleet.manager.domain import MetricSample, NodeRegistration
from opsfleet.manager.services import metrics as metrics_module
from tests.helpers import assert_eventually
from tests.integration.manager.support import Running


async def test_retention_deletes_only_old_samples_and_rollups(
    database_url: str, start_manager: Callable[..., Any], monkeypatch: Any
) -> None:
    r: Running = await start_manager(
        database_url,
        **{
            "metrics.retention.raw": "2d",
            "metrics.retention.rollup_5m": "4d",
            "metrics.retention.rollup_1h": "4d",
        },
    )
    now = int(time.time())
    hour = (now - 5 * 86400) // 3600 * 3600
    for node in ("n1", "n2", "n3"):
        await r.app.nodes.register(NodeRegistration(node, "h", "10.0.0.1", "linux", "amd64", {}, "1", "1"))
        ancient = [MetricSample(node, "cpu", hour + 60 * i, {"usage_percent": 0.5}) for i in range(10)]
        old = [MetricSample(node, "cpu", now - 3 * 86400 - 60 * i, {"usage_percent": 1.0}) for i in range(40)]
        recent = [MetricSample(node, "cpu", now - 86400 - 60 * i, {"usage_percent": 2.0}) for i in range(30)]
        await r.app.store.insert_metrics(ancient + old + recent)
    await r.app.rollups.run_pass()  # late samples: their buckets are recomputed before raw rows go
    monkeypatch.setattr(metrics_module, "RETENTION_NODES", 2)  # two transactions per resolution
    deleted = await r.app.metrics.apply_retention()
    rollups_5m = 3 * 2  # per node: the 10 ancient samples span two 5-minute buckets ...
    rollups_1h = 3 * 1  # ... and one hour
    assert deleted == 3 * 50 + rollups_5m + rollups_1h
    for node in ("n1", "n2", "n3"):
        left = await r.app.store.query_metrics(node, "cpu", 0, now)
        assert len(left) == 30 and all(s.values["usage_percent"] == 2.0 for s in left)
        kept = await r.app.store.metrics.rollups(node, "cpu", 300, 0, now)
        assert sum(rollup.n for _, rollup in kept) == 70  # old and recent samples: 40 + 30
    assert await r.app.metrics.apply_retention() == 0


async def test_raw_samples_stay_until_the_rollup_job_has_read_them(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    r: Running = await start_manager(
        database_url, **{"metrics.retention.raw": "2d", "metrics.rollup_interval": "300s"}
    )
    await assert_eventually(lambda: r.app.rollups.passes >= 1)  # the next pass is 5 minutes away
    now = int(time.time())
    await r.app.nodes.register(NodeRegistration("n1", "h", "10.0.0.1", "linux", "amd64", {}, "1", "1"))
    old = [MetricSample("n1", "cpu", now - 3 * 86400 - 60 * i, {"usage_percent": 1.0}) for i in range(10)]
    await r.app.store.insert_metrics(old)  # late: dirty marks, not final yet
    assert await r.app.metrics.apply_retention() == 0
    assert await r.app.store.count_metrics("n1") == 10
    await r.app.rollups.run_pass()
    assert await r.app.metrics.apply_retention() == 10
    hours = await r.app.store.metrics.rollups("n1", "cpu", 3600, now - 4 * 86400, now)
    assert sum(rollup.n for _, rollup in hours) == 10  # one or two hours, by the clock
