"""The metrics write path sheds load with a retry delay instead of queueing without bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from opsfleet.common.errors import ResourceExhausted, Unavailable
from opsfleet.manager.domain import MetricSample, NodeRegistration
from opsfleet.manager.services.metrics import MetricService, RawMetric
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.store.sql import SqlStore


class SlowStore(SqlStore):
    """A real SQLite store whose metric writes wait until released."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.release = asyncio.Event()

    async def insert_metrics(self, samples: Sequence[MetricSample]) -> None:
        await self.release.wait()
        await super().insert_metrics(samples)


def rows(n: int, offset: int = 0) -> list[RawMetric]:
    now = int(time.time())
    return [RawMetric("cpu", now - offset - i, {"usage_percent": 1.0}) for i in range(n)]


async def test_full_queue_answers_resource_exhausted_with_retry_delay(tmp_path: Path) -> None:
    store = SlowStore(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await store.start()
    nodes = NodeService(store, offline_after=60)
    await nodes.start()
    metrics = MetricService(store, nodes, retention_days=30, max_queued_rows=1000)
    await metrics.start()
    try:
        await nodes.register(NodeRegistration("n1", "h", "1.1.1.1", "linux", "amd64", {}, "1", "1"))
        first = asyncio.create_task(metrics.ingest("n1", rows(800)))
        await asyncio.sleep(0)  # let the first report enter the queue
        while metrics.queued_rows == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(ResourceExhausted) as info:
            await metrics.ingest("n1", rows(300, offset=1000))
        assert info.value.retry_after is not None and info.value.retry_after >= 1.0
        store.release.set()
        assert (await first).accepted == 800
        assert (await metrics.ingest("n1", rows(300, offset=1000))).accepted == 300
        assert await store.count_metrics("n1") == 1100
    finally:
        store.release.set()
        await metrics.stop()
        await nodes.stop()
        await store.close()
    with pytest.raises(Unavailable):
        await metrics.ingest("n1", rows(1))
