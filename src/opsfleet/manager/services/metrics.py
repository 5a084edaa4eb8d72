"""Metrics ingestion with group commit, and retention.

``ingest`` validates, queues the samples and waits until the writer task has committed
them in a batch shared with other concurrent reports: one transaction serves many RPCs,
and a reply is only sent once its rows are durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.validation import (
    MAX_METRICS_PER_REQUEST,
    check_metric_type,
    check_sample,
    check_value_keys,
)
from opsfleet.manager.domain import IngestResult, MetricSample
from opsfleet.manager.services.batching import GroupCommitter
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.store.base import Store

log = logging.getLogger(__name__)

RETENTION_NODES = 500
"""Nodes swept per retention transaction (deletion goes by key range, node by node)."""
DAY = 86400
RAW_SLACK = 1800
"""Samples must be this much younger than the raw retention: a late sample makes the rollup
job recompute its bucket from the raw samples, which must all still be there."""


@dataclass(frozen=True)
class Retention:
    """How long samples and each rollup resolution are kept (seconds)."""

    raw: int = 7 * DAY
    rollup_5m: int = 90 * DAY
    rollup_1h: int = 730 * DAY

    def by_resolution(self) -> tuple[tuple[int, int, str], ...]:
        """(store resolution, seconds kept, name): 0 is raw samples, else rollup seconds."""
        return (
            (0, self.raw, "raw samples"),
            (300, self.rollup_5m, "5-minute rollups"),
            (3600, self.rollup_1h, "1-hour rollups"),
        )


@dataclass(frozen=True)
class RawMetric:
    type: str
    timestamp: int
    values: Mapping[str, object]


class MetricService:
    def __init__(
        self,
        store: Store,
        nodes: NodeService,
        *,
        retention_days: int,
        retention: Retention = Retention(),
        retention_interval: float = 3600.0,
        max_batch_rows: int = 5000,
        max_queued_rows: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._nodes = nodes
        self._retention_days = retention_days
        self.retention = retention
        self._retention_interval = retention_interval
        self._clock = clock
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("metrics")
        self._writer: GroupCommitter[list[MetricSample], None] = GroupCommitter(
            "metrics writer", self._insert, max_batch=max_batch_rows, max_queued=max_queued_rows, units=len
        )
        self._ingest_listeners: list[Callable[[str, Sequence[MetricSample]], None]] = []
        self.is_leader: Callable[[], bool] = lambda: True
        """Retention runs only while this is true (the elected replica; opsfleet.manager.leadership)."""

    def add_ingest_listener(self, listener: Callable[[str, Sequence[MetricSample]], None]) -> None:
        """``listener(node_id, samples)`` runs after the samples of a report are committed."""
        self._ingest_listeners.append(listener)

    @property
    def batch_observer(self) -> Callable[[int, float], None] | None:
        """Called with (rows, seconds) after each committed write batch."""
        return self._writer.observer

    @batch_observer.setter
    def batch_observer(self, observer: Callable[[int, float], None] | None) -> None:
        self._writer.observer = observer

    @property
    def batches_written(self) -> int:
        return self._writer.batches

    @property
    def rows_written(self) -> int:
        return self._writer.units_committed

    @property
    def queued_rows(self) -> int:
        return self._writer.queued

    async def start(self) -> None:
        await self._writer.start()
        self._tasks.spawn("retention", self._retention_loop())

    async def stop(self) -> None:
        """Refuse new reports, commit what is queued, stop; idempotent."""
        self._stop.set()
        await self._writer.stop()
        await self._tasks.stop(timeout=30.0)

    async def _insert(self, batches: Sequence[list[MetricSample]]) -> list[None]:
        await self._store.insert_metrics([s for batch in batches for s in batch])
        return [None] * len(batches)

    def validate(self, node_id: str, metrics: Iterable[RawMetric]) -> tuple[list[MetricSample], int]:
        """The samples to store and the count of dropped non-finite values.

        InvalidArgument names the first invalid sample: ``metrics[<i>].<field>: <reason>``
        (daemons use the index to drop only that sample). A timestamp of 0 (unset) means now.
        Samples older than ``retention_days`` or than the raw retention less ``RAW_SLACK``
        are refused.
        """
        items = list(metrics)
        if len(items) > MAX_METRICS_PER_REQUEST:
            raise InvalidArgument(
                f"too many metrics in one request: {len(items)} > {MAX_METRICS_PER_REQUEST}"
            )
        now = int(self._clock())
        max_age = min(self._retention_days * DAY, self.retention.raw - RAW_SLACK)
        samples: list[MetricSample] = []
        dropped = 0
        for index, item in enumerate(items):
            checked = check_sample(
                index, item.type, item.timestamp or now, item.values, now=now, max_age_seconds=max_age
            )
            check_value_keys(f"metrics[{index}].values", item.values)
            dropped += checked.dropped_values
            samples.append(MetricSample(node_id, checked.type, checked.timestamp, checked.values))
        return samples, dropped

    async def ingest(self, node_id: str, metrics: Iterable[RawMetric]) -> IngestResult:
        await self._nodes.ensure_known(node_id)
        samples, dropped = self.validate(node_id, metrics)
        if samples:
            await self._commit(samples)
            for listener in self._ingest_listeners:
                listener(node_id, samples)
        self._nodes.seen(node_id)
        return IngestResult(accepted=len(samples), dropped_values=dropped)

    async def _commit(self, samples: list[MetricSample]) -> None:
        # Daemons keep samples the manager sheds (ResourceExhausted) and send them again later.
        await self._writer.submit(samples)

    async def history(self, node_id: str, type_: str, start: int, end: int) -> list[MetricSample]:
        await self._nodes.get(node_id)
        check_metric_type(type_)
        return await self._store.query_metrics(node_id, type_, start, end)

    async def apply_retention(self) -> int:
        """Delete raw samples and rollups past their retention; how many (samples and rollups)."""
        now = int(self._clock())
        total = 0
        for resolution, keep, name in self.retention.by_resolution():
            deleted = 0
            after: int | None = 0
            while after is not None and not self._stop.is_set():
                n, after = await self._store.delete_metrics_before(
                    resolution, now - keep, after, RETENTION_NODES
                )
                deleted += n
                await asyncio.sleep(0)
            if deleted:
                log.info("retention: deleted %d %s older than %d s", deleted, name, keep)
            total += deleted
        return total

    async def _retention_loop(self) -> None:
        try:
            if self.is_leader():
                await self.apply_retention()
        except Exception:
            log.exception("retention pass failed; will retry")
        while not await sleep_or_stop(self._stop, self._retention_interval):
            if not self.is_leader():
                continue
            try:
                await self.apply_retention()
            except Exception:
                log.exception("retention pass failed; will retry")
