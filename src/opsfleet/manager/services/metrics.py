"""Metrics ingestion with group commit, and retention.

``ingest`` validates, queues the samples and waits until the writer task has committed
them in a batch shared with other concurrent reports: one transaction serves many RPCs,
and a reply is only sent once its rows are durable.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from opsfleet.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.validation import (
    MAX_METRICS_PER_REQUEST,
    check_metric_type,
    clean_values,
)
from opsfleet.manager.domain import IngestResult, MetricSample
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.store.base import Store

log = logging.getLogger(__name__)

RETENTION_CHUNK = 5000


@dataclass(frozen=True)
class RawMetric:
    type: str
    timestamp: int
    values: Mapping[str, object]


@dataclass
class _Pending:
    samples: list[MetricSample]
    done: asyncio.Future[None]


class MetricService:
    def __init__(
        self,
        store: Store,
        nodes: NodeService,
        *,
        retention_days: int,
        retention_interval: float = 3600.0,
        max_batch_rows: int = 5000,
        max_queued_rows: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._nodes = nodes
        self._retention_days = retention_days
        self._retention_interval = retention_interval
        self._max_batch_rows = max_batch_rows
        self._max_queued_rows = max_queued_rows
        self._queued_rows = 0
        self._clock = clock
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._accepting = False
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("metrics")
        self.batches_written = 0
        self.rows_written = 0
        self.batch_observer: Callable[[int, float], None] | None = None

    async def start(self) -> None:
        self._accepting = True
        self._tasks.spawn("writer", self._writer_loop())
        self._tasks.spawn("retention", self._retention_loop())

    async def stop(self) -> None:
        """Refuse new reports, commit what is queued, stop; idempotent."""
        self._accepting = False
        self._stop.set()
        await self._queue.put(_Pending([], asyncio.get_running_loop().create_future()))
        await self._tasks.stop(timeout=30.0)

    def validate(self, node_id: str, metrics: Iterable[RawMetric]) -> tuple[list[MetricSample], int]:
        items = list(metrics)
        if len(items) > MAX_METRICS_PER_REQUEST:
            raise InvalidArgument(
                f"too many metrics in one request: {len(items)} > {MAX_METRICS_PER_REQUEST}"
            )
        now = int(self._clock())
        samples: list[MetricSample] = []
        dropped = 0
        for item in items:
            check_metric_type(item.type)
            if item.timestamp < 0:
                raise InvalidArgument(f"metric {item.type!r} has a negative timestamp")
            kept, lost = clean_values(item.type, item.values)
            dropped += lost
            samples.append(MetricSample(node_id, item.type, item.timestamp or now, kept))
        return samples, dropped

    async def ingest(self, node_id: str, metrics: Iterable[RawMetric]) -> IngestResult:
        await self._nodes.ensure_known(node_id)
        samples, dropped = self.validate(node_id, metrics)
        if samples:
            await self._commit(samples)
        self._nodes.seen(node_id)
        return IngestResult(accepted=len(samples), dropped_values=dropped)

    async def _commit(self, samples: list[MetricSample]) -> None:
        if not self._accepting:
            raise Unavailable("manager is shutting down")
        if self._queued_rows + len(samples) > self._max_queued_rows:
            # Shed load instead of queueing without bound; daemons keep the samples and retry.
            raise ResourceExhausted(
                f"metrics write queue is full ({self._queued_rows} rows)",
                retry_after=random.uniform(1.0, 3.0),
            )
        self._queued_rows += len(samples)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(samples, done))
        await done

    async def history(self, node_id: str, type_: str, start: int, end: int) -> list[MetricSample]:
        await self._nodes.get(node_id)
        check_metric_type(type_)
        return await self._store.query_metrics(node_id, type_, start, end)

    async def _writer_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            rows = len(first.samples)
            while rows < self._max_batch_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                rows += len(item.samples)
            await self._write(batch, rows)
            if self._stop.is_set() and self._queue.empty():
                return

    async def _write(self, batch: list[_Pending], rows: int) -> None:
        samples = [s for p in batch for s in p.samples]
        self._queued_rows -= rows
        started = time.perf_counter()
        error: BaseException | None = None
        if samples:
            try:
                await self._store.insert_metrics(samples)
            except Exception as exc:
                log.warning("metrics batch of %d rows failed: %s", rows, exc)
                error = Unavailable(f"storing metrics failed: {exc}")
        elapsed = time.perf_counter() - started
        if error is None and samples:
            self.batches_written += 1
            self.rows_written += rows
            if self.batch_observer is not None:
                self.batch_observer(rows, elapsed)
        for pending in batch:
            if pending.done.done():
                continue
            if error is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(error)

    async def apply_retention(self) -> int:
        cutoff = int(self._clock()) - self._retention_days * 86400
        total = 0
        while True:
            deleted = await self._store.delete_metrics_before(cutoff, RETENTION_CHUNK)
            total += deleted
            if deleted < RETENTION_CHUNK or self._stop.is_set():
                break
            await asyncio.sleep(0)
        if total:
            log.info("retention: deleted %d samples older than %d days", total, self._retention_days)
        return total

    async def _retention_loop(self) -> None:
        try:
            await self.apply_retention()
        except Exception:
            log.exception("retention pass failed; will retry")
        while not await sleep_or_stop(self._stop, self._retention_interval):
            try:
                await self.apply_retention()
            except Exception:
                log.exception("retention pass failed; will retry")
