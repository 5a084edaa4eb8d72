"""Reading metrics for the REST API: latest samples, history (raw or bucketed), summaries, fleet overview.

History spans up to two years. Up to 6 hours come back as raw samples; longer spans (and
short ones older than the raw retention) come back as averages of every value key over
buckets read from the rollups: 5-minute rollups up to a week, 1-hour rollups beyond. A bucket
is a whole number of rollups, aligned on multiples of its size (unix time), so that at most
about ``MAX_POINTS`` buckets cover the span.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.validation import check_metric_type
from opsfleet.manager.domain import MetricBucket, MetricSample, Node, NodeStatus, UsageStats
from opsfleet.manager.services.metrics import MetricService
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.store.base import FleetQueries

NODE_TYPES = ("cpu", "memory", "disk", "network")
USAGE_TYPES = ("cpu", "memory", "disk")
RAW_MAX_SPAN = 6 * 3600
ROLLUP_5M_MAX_SPAN = 7 * 86400
MAX_SPAN = 730 * 86400
MAX_POINTS = 2100
RES_5M = 300
RES_1H = 3600
MAX_SUMMARY_DURATION = 30 * 86400
OVERVIEW_WINDOW = 900
TOP_NODES = 5


def resolution(span: int, *, raw_available: bool = True) -> int:
    """0 (raw samples) up to 6 h while raw samples are kept, else the rollup seconds to read."""
    if span <= RAW_MAX_SPAN and raw_available:
        return 0
    return RES_5M if span <= ROLLUP_5M_MAX_SPAN else RES_1H


def bucket_seconds(span: int, *, raw_available: bool = True) -> int:
    """0 (raw samples), else a multiple of the rollup resolution giving at most MAX_POINTS buckets."""
    res = resolution(span, raw_available=raw_available)
    if res == 0:
        return 0
    return res * max(1, math.ceil(span / (MAX_POINTS * res)))


@dataclass(frozen=True)
class History:
    node_id: str
    type: str
    start: int
    end: int
    bucket_seconds: int
    samples: list[MetricSample] = field(default_factory=list)
    buckets: list[MetricBucket] = field(default_factory=list)


@dataclass(frozen=True)
class NodeUsage:
    node_id: str
    hostname: str
    status: NodeStatus
    usage: dict[str, float]
    updated_at: int | None


@dataclass(frozen=True)
class Overview:
    total: int
    online: int
    offline: int
    averages: dict[str, float | None]
    nodes: list[NodeUsage]
    top_cpu: list[NodeUsage]
    top_memory: list[NodeUsage]


class MetricQueryService:
    def __init__(
        self,
        queries: FleetQueries,
        nodes: NodeService,
        metrics: MetricService,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queries = queries
        self._nodes = nodes
        self._metrics = metrics
        self._clock = clock

    async def latest(self, node_id: str) -> dict[str, MetricSample | None]:
        """The newest cpu, memory, disk and network sample of a node (None when it has none)."""
        await self._nodes.get(node_id)
        return {t: await self._queries.latest_sample(node_id, t) for t in NODE_TYPES}

    async def history(self, node_id: str, type_: str, start: int, end: int) -> History:
        check_metric_type(type_)
        if end <= start:
            raise InvalidArgument("end_time must be after start_time")
        if end - start > MAX_SPAN:
            raise InvalidArgument(f"start_time..end_time must span at most {MAX_SPAN // 86400} days")
        raw_kept_since = int(self._clock()) - self._metrics.retention.raw
        size = bucket_seconds(end - start, raw_available=start >= raw_kept_since)
        if size == 0:
            samples = await self._metrics.history(node_id, type_, start, end)
            return History(node_id, type_, start, end, 0, samples=samples)
        await self._nodes.get(node_id)
        buckets = await self._queries.bucketed_metrics(node_id, type_, start, end, size)
        return History(node_id, type_, start, end, size, buckets=buckets)

    async def summary(
        self, node_id: str, duration: float
    ) -> dict[str, tuple[UsageStats, MetricSample | None]]:
        """Per type: min/max/avg of usage_percent in the last ``duration`` seconds, and its newest sample."""
        if not 1 <= duration <= MAX_SUMMARY_DURATION:
            raise InvalidArgument(f"duration must be 1s..{MAX_SUMMARY_DURATION // 86400}d")
        await self._nodes.get(node_id)
        end = int(self._clock())
        stats = {
            s.type: s for s in await self._queries.usage_stats(node_id, NODE_TYPES, end - int(duration), end)
        }
        out: dict[str, tuple[UsageStats, MetricSample | None]] = {}
        for t in NODE_TYPES:
            empty = UsageStats(type=t, min=None, max=None, avg=None, samples=0)
            out[t] = (stats.get(t, empty), await self._queries.latest_sample(node_id, t))
        return out

    async def fleet_usage(self) -> tuple[list[Node], dict[str, dict[str, tuple[int, float]]]]:
        """Every node, and per node the latest (timestamp, usage_percent) per type of the last 15 minutes."""
        nodes = await self._nodes.list_all()
        since = int(self._clock()) - OVERVIEW_WINDOW
        usage: dict[str, dict[str, tuple[int, float]]] = {}
        for node_id, type_, ts, value in await self._queries.latest_usage(USAGE_TYPES, since):
            usage.setdefault(node_id, {})[type_] = (ts, value)
        return nodes, usage

    async def overview(self) -> Overview:
        nodes, usage = await self.fleet_usage()
        rows = []
        for node in nodes:
            mine = usage.get(node.node_id, {})
            rows.append(
                NodeUsage(
                    node_id=node.node_id,
                    hostname=node.hostname,
                    status=node.status,
                    usage={t: v for t, (_, v) in mine.items()},
                    updated_at=max((ts for ts, _ in mine.values()), default=None),
                )
            )
        averages: dict[str, float | None] = {}
        for t in USAGE_TYPES:
            values = [r.usage[t] for r in rows if t in r.usage]
            averages[t] = sum(values) / len(values) if values else None

        def top(type_: str) -> list[NodeUsage]:
            have = [r for r in rows if type_ in r.usage]
            return sorted(have, key=lambda r: (-r.usage[type_], r.node_id))[:TOP_NODES]

        online = sum(1 for n in nodes if n.status is NodeStatus.ONLINE)
        return Overview(
            total=len(nodes),
            online=online,
            offline=len(nodes) - online,
            averages=averages,
            nodes=rows,
            top_cpu=top("cpu"),
            top_memory=top("memory"),
        )
