"""Forwards every committed sample to a Prometheus remote-write receiver, off the ingest path.

``samples_committed`` (a ``MetricService`` ingest listener, called after the commit) only
appends to a bounded in-memory queue and never blocks: when the queue is full the surplus is
dropped and counted. One owned task drains the queue in batches of ``batch_size`` stored
samples: each batch is sorted by timestamp, grouped into series (``opsfleet_<type>_<key>``
with ``node_id``, ``hostname`` and the node's labels), encoded and posted. Connection errors,
timeouts, 5xx and 429 are retried with exponential backoff (full jitter) up to
``max_attempts``; other 4xx are not retried. Counters (Prometheus samples: one per value)
are exported as ``opsfleet_remote_write_samples_total{result="sent|failed|dropped"}``.

Node labels come from a cache filled at start from the node list and dropped for a node when
it registers again or is forgotten; a miss costs one lookup in the sender task, never a read
per sample. Lifecycle: ``start()`` then ``stop()`` (idempotent, safe before ``start()``):
``stop()`` sends what is queued with one attempt per batch within ``timeout``, counts what is
left as dropped and closes the sender; nothing is posted after it returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from opsfleet.common.backoff import Backoff
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.domain import MetricSample
from opsfleet.manager.export import wire
from opsfleet.manager.export.sender import Sender
from opsfleet.manager.export.series import Labels, metric_name, node_labels, with_name
from opsfleet.manager.export.settings import RemoteWriteSection

log = logging.getLogger(__name__)

NodeInfo = tuple[str, dict[str, str]]
"""(hostname, labels) of a node."""

MAX_CACHED_NAMES = 10_000
MAX_SERIES_PER_NODE = 10_000


class _NodeSeries:
    """One node's labels and the encoded labels of each of its series (by metric name)."""

    __slots__ = ("base", "encoded")

    def __init__(self, base: Labels) -> None:
        self.base = base
        self.encoded: dict[str, bytes] = {}

    def labels(self, name: str) -> bytes:
        found = self.encoded.get(name)
        if found is None:
            if len(self.encoded) >= MAX_SERIES_PER_NODE:
                self.encoded.clear()
            found = self.encoded[name] = wire.encode_labels(with_name(name, self.base))
        return found


@dataclass
class ExportStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    requests: int = 0
    last_error: str = ""


class RemoteWriteExporter:
    def __init__(
        self,
        settings: RemoteWriteSection,
        sender: Sender,
        *,
        lookup: Callable[[str], Awaitable[NodeInfo | None]],
        registry: CollectorRegistry | None = None,
        sleep: Callable[[float], Awaitable[bool]] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """``lookup(node_id)`` reads a node missing from the cache (None: unknown);
        ``sleep(seconds)`` waits between attempts and returns True when stopping (default:
        wait on the stop event); ``rand`` is the backoff's jitter source."""
        self._settings = settings
        self._sender = sender
        self._lookup = lookup
        self._sleep = sleep or self._sleep_or_stop
        self._rand = rand
        self._queue: deque[MetricSample] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("remote-write")
        self._accepting = False
        self._stopped = False
        self._in_flight = 0
        self._nodes: dict[str, _NodeSeries] = {}
        self._names: dict[tuple[str, str], str] = {}
        self.stats = ExportStats()
        counter = Counter(
            "opsfleet_remote_write_samples",
            "Samples forwarded by Prometheus remote write, by result (sent, failed, dropped)",
            ["result"],
            registry=registry,
        )
        self._counted = {result: counter.labels(result) for result in ("sent", "failed", "dropped")}
        queued = Gauge(
            "opsfleet_remote_write_queue_length",
            "Stored samples waiting to be forwarded by remote write",
            registry=registry,
        )
        queued.set_function(lambda: len(self._queue))

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def wait_idle(self) -> None:
        """Return once everything queued so far was sent, refused or given up."""
        await self._idle.wait()

    async def start(self, nodes: Iterable[tuple[str, str, dict[str, str]]] = ()) -> None:
        """Cache the labels of the known ``(node_id, hostname, labels)`` and start sending."""
        for node_id, hostname, labels in nodes:
            self._nodes[node_id] = _NodeSeries(node_labels(node_id, hostname, labels, self._settings.labels))
        self._accepting = True
        self._tasks.spawn("sender", self._run())
        s = self._settings
        log.info(
            "remote write: forwarding samples to %s (batch %d, queue %d)", s.url, s.batch_size, s.queue_size
        )

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._accepting = False
        self._stop.set()
        self._wake.set()
        await self._tasks.stop(timeout=self._settings.timeout)
        left = sum(len(s.values) for s in self._queue) + self._in_flight
        self._queue.clear()
        self._in_flight = 0
        self._idle.set()
        if left:
            self._count("dropped", left)
            log.warning("remote write: %d samples not sent before shutdown", left)
        await self._sender.close()
        s = self.stats
        log.info("remote write stopped: %d sent, %d failed, %d dropped", s.sent, s.failed, s.dropped)

    # -- listeners (called on the ingest and registration paths; never block) ------------------

    def samples_committed(self, node_id: str, samples: Sequence[MetricSample]) -> None:
        """Queue the committed ``samples``; what does not fit is dropped and counted."""
        if not self._accepting:
            if self._stopped:
                self._count("dropped", sum(len(s.values) for s in samples))
            return
        room = self._settings.queue_size - len(self._queue)
        if room >= len(samples):
            self._queue.extend(samples)
        else:
            kept = max(room, 0)
            self._queue.extend(samples[:kept])
            self._count("dropped", sum(len(s.values) for s in samples[kept:]))
        if self._queue:
            self._idle.clear()
            self._wake.set()

    def node_changed(self, node_id: str, *_: object) -> None:
        """A node registered again or was forgotten: its labels are read again when needed."""
        self._nodes.pop(node_id, None)

    # -- sending --------------------------------------------------------------------------------

    def _count(self, result: str, samples: int) -> None:
        if samples <= 0:
            return
        if result == "sent":
            self.stats.sent += samples
        elif result == "failed":
            self.stats.failed += samples
        else:
            self.stats.dropped += samples
        self._counted[result].inc(samples)

    async def _sleep_or_stop(self, seconds: float) -> bool:
        return await sleep_or_stop(self._stop, seconds)

    async def _run(self) -> None:
        size = self._settings.batch_size
        while True:
            if not self._queue:
                self._idle.set()
                if self._stop.is_set():
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
            await self._export(batch)

    async def _export(self, batch: list[MetricSample]) -> None:
        samples = sum(len(s.values) for s in batch)
        self._in_flight = samples  # counted as dropped by stop() if the task is cancelled now
        body = await self._encode(batch)
        ok = await self._deliver(body, samples)
        self._in_flight = 0
        self._count("sent" if ok else "failed", samples)

    async def _encode(self, batch: list[MetricSample]) -> bytes:
        """The request of ``batch``: grouped by series, each in time order (one value per timestamp)."""
        batch.sort(key=lambda s: s.timestamp)
        groups: dict[tuple[_NodeSeries, str], dict[int, float]] = {}
        unknown: dict[str, _NodeSeries] = {}
        names = self._names
        for sample in batch:
            node = self._nodes.get(sample.node_id) or unknown.get(sample.node_id)
            if node is None:
                node = await self._node(sample.node_id)
                if self._nodes.get(sample.node_id) is not node:
                    unknown[sample.node_id] = node
            timestamp_ms = sample.timestamp * 1000
            type_ = sample.type
            for key, value in sample.values.items():
                name = names.get((type_, key)) or self._name(type_, key)
                points = groups.get((node, name))
                if points is None:
                    points = groups[(node, name)] = {}
                points[timestamp_ms] = value
        request = wire.RequestBuilder()
        for (node, name), points in groups.items():
            request.add(node.labels(name), points.items())
        return request.finish()

    async def _node(self, node_id: str) -> _NodeSeries:
        extra = self._settings.labels
        try:
            info = await self._lookup(node_id)
        except Exception as exc:
            log.warning("remote write: cannot read node %s (%s); exporting it without labels", node_id, exc)
            return _NodeSeries(node_labels(node_id, "", {}, extra))
        if info is None:
            return _NodeSeries(node_labels(node_id, "", {}, extra))
        node = self._nodes[node_id] = _NodeSeries(node_labels(node_id, info[0], info[1], extra))
        return node

    def _name(self, type_: str, key: str) -> str:
        if len(self._names) >= MAX_CACHED_NAMES:
            self._names.clear()
        name = self._names[(type_, key)] = metric_name(type_, key)
        return name

    async def _deliver(self, body: bytes, samples: int) -> bool:
        """POST ``body`` until accepted, refused (4xx but 429) or ``max_attempts`` ran out."""
        s = self._settings
        backoff = Backoff(base=s.retry_backoff, cap=s.retry_backoff_max, rand=self._rand)
        for attempt in range(1, s.max_attempts + 1):
            self.stats.requests += 1
            result = await self._sender.send(body)
            if result.ok:
                return True
            self.stats.last_error = result.error
            if not result.retryable:
                log.warning("remote write: %d samples refused by the receiver: %s", samples, result.error)
                return False
            log.warning(
                "remote write: attempt %d of %d failed (%d samples): %s",
                attempt,
                s.max_attempts,
                samples,
                result.error,
            )
            if attempt < s.max_attempts and await self._sleep(backoff.next_delay()):
                break
        log.error("remote write: %d samples given up: %s", samples, self.stats.last_error)
        return False
