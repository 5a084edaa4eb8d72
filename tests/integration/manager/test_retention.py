"""Retention deletes old samples in bounded chunks and keeps recent ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opsfleet.manager.domain import MetricSample, NodeRegistration
from opsfleet.manager.services import metrics as metrics_module
from tests.integration.manager.support import Running


async def test_retention_deletes_only_old_samples(
    database_url: str, start_manager: Callable[..., Any], monkeypatch: Any
) -> None:
    r: Running = await start_manager(database_url, **{"metrics.retention_days": 2})
    await r.app.nodes.register(NodeRegistration("n1", "h", "10.0.0.1", "linux", "amd64", {}, "1", "1"))
    now = int(time.time())
    old = [MetricSample("n1", "cpu", now - 3 * 86400 - i, {"usage_percent": 1.0}) for i in range(120)]
    recent = [MetricSample("n1", "cpu", now - 86400 - i, {"usage_percent": 2.0}) for i in range(30)]
    await r.app.store.insert_metrics(old + recent)
    monkeypatch.setattr(metrics_module, "RETENTION_CHUNK", 50)  # three chunks of at most 50 rows
    deleted = await r.app.metrics.apply_retention()
    assert deleted == 120
    left = await r.app.store.query_metrics("n1", "cpu", 0, now)
    assert len(left) == 30 and all(s.values["usage_percent"] == 2.0 for s in left)
