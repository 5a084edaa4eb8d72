"""The remote-write exporter's queue and sender task: ingest never blocks (a full queue drops
and counts), retries back off exponentially on retryable failures only, batches go out in time
order, node labels are read once per node, stop() counts what it could not send."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client import CollectorRegistry

from opsfleet.manager.domain import MetricSample
from opsfleet.manager.export import wire
from opsfleet.manager.export.remote_write import NodeInfo, RemoteWriteExporter
from opsfleet.manager.export.sender import SENT, SendResult
from opsfleet.manager.export.settings import RemoteWriteSection
from tests.helpers import assert_eventually

T0 = 1_700_000_000
UNAVAILABLE = SendResult(ok=False, retryable=True, error="HTTP 503: down")
REFUSED = SendResult(ok=False, retryable=False, error="HTTP 400: out of order sample")


class FakeSender:
    """Answers with ``script`` (then SENT); waits on ``gate`` before answering when given."""

    def __init__(self, script: Iterable[SendResult] = (), gate: asyncio.Event | None = None) -> None:
        self.script = list(script)
        self.gate = gate
        self.bodies: list[bytes] = []
        self.closed = False

    async def send(self, body: bytes) -> SendResult:
        self.bodies.append(body)
        if self.gate is not None:
            await self.gate.wait()
        return self.script.pop(0) if self.script else SENT

    async def close(self) -> None:
        self.closed = True

    def series(self) -> list[wire.Series]:
        return [s for body in self.bodies for s in wire.decode(body)]


class Nodes:
    def __init__(self) -> None:
        self.info: dict[str, NodeInfo] = {"n1": ("host-1", {"env": "prod"}), "n2": ("host-2", {})}
        self.lookups: list[str] = []

    async def lookup(self, node_id: str) -> NodeInfo | None:
        self.lookups.append(node_id)
        return self.info.get(node_id)


def sample(node_id: str, t: int, value: float, type_: str = "cpu") -> MetricSample:
    return MetricSample(node_id, type_, t, {"usage_percent": value})


def exporter(
    sender: FakeSender,
    nodes: Nodes | None = None,
    *,
    delays: list[float] | None = None,
    registry: CollectorRegistry | None = None,
    **settings: object,
) -> RemoteWriteExporter:
    async def sleep(seconds: float) -> bool:
        assert delays is not None
        delays.append(seconds)
        return False

    return RemoteWriteExporter(
        RemoteWriteSection.model_validate({"url": "http://rw.test/api/v1/write", **settings}),
        sender,
        lookup=(nodes or Nodes()).lookup,
        registry=registry,
        sleep=sleep if delays is not None else None,
        rand=lambda: 1.0,
    )


async def test_full_queue_drops_and_counts_without_blocking() -> None:
    gate = asyncio.Event()
    sender = FakeSender(gate=gate)
    registry = CollectorRegistry()
    exp = exporter(sender, queue_size=3, batch_size=1, registry=registry)
    await exp.start()
    exp.samples_committed("n1", [sample("n1", T0, 1.0)])
    await assert_eventually(lambda: len(sender.bodies) == 1)  # the sender task holds one batch
    # The receiver hangs: the queue fills up (3) and the rest is dropped, synchronously.
    exp.samples_committed("n1", [sample("n1", T0 + i, float(i)) for i in range(1, 6)])
    exp.samples_committed("n1", [MetricSample("n1", "mem", T0 + 9, {"a": 1.0, "b": 2.0})])
    assert exp.queued == 3 and exp.stats.dropped == 4
    assert registry.get_sample_value("opsfleet_remote_write_samples_total", {"result": "dropped"}) == 4
    assert registry.get_sample_value("opsfleet_remote_write_queue_length") == 3
    gate.set()
    await assert_eventually(lambda: exp.stats.sent == 4)
    await exp.stop()
    assert registry.get_sample_value("opsfleet_remote_write_samples_total", {"result": "sent"}) == 4
    assert exp.stats.failed == 0 and sender.closed


async def test_retryable_failures_back_off_exponentially_then_succeed() -> None:
    delays: list[float] = []
    sender = FakeSender([UNAVAILABLE, UNAVAILABLE, UNAVAILABLE])
    exp = exporter(sender, delays=delays, retry_backoff=0.5, retry_backoff_max=1.5)
    await exp.start()
    await asyncio.wait_for(exp.wait_idle(), 1)  # nothing queued yet
    exp.samples_committed("n1", [sample("n1", T0, 1.0)])
    await asyncio.wait_for(exp.wait_idle(), 5)
    assert exp.stats.sent == 1
    await exp.stop()
    assert delays == [0.5, 1.0, 1.5]  # doubling, capped (jitter pinned to its maximum)
    assert len(sender.bodies) == 4 and len(set(sender.bodies)) == 1
    assert exp.stats.failed == 0 and exp.stats.last_error == "HTTP 503: down"


async def test_refused_batch_is_not_retried_and_counts_failed() -> None:
    delays: list[float] = []
    sender = FakeSender([REFUSED])
    exp = exporter(sender, delays=delays)
    await exp.start()
    exp.samples_committed("n1", [MetricSample("n1", "cpu", T0, {"usage_percent": 1.0, "user": 2.0})])
    await assert_eventually(lambda: exp.stats.failed == 2)
    exp.samples_committed("n1", [sample("n1", T0 + 1, 3.0)])
    await assert_eventually(lambda: exp.stats.sent == 1)
    await exp.stop()
    assert delays == [] and len(sender.bodies) == 2


async def test_attempts_run_out() -> None:
    delays: list[float] = []
    sender = FakeSender([UNAVAILABLE] * 5)
    exp = exporter(sender, delays=delays, max_attempts=3, retry_backoff=1, retry_backoff_max=60)
    await exp.start()
    exp.samples_committed("n1", [sample("n1", T0, 1.0)])
    await assert_eventually(lambda: exp.stats.failed == 1)
    await exp.stop()
    assert delays == [1.0, 2.0] and len(sender.bodies) == 3 and exp.stats.sent == 0


async def test_batch_sorted_by_time_per_series_with_node_labels() -> None:
    gate = asyncio.Event()
    sender = FakeSender(gate=gate)
    nodes = Nodes()
    exp = exporter(sender, nodes, batch_size=100, labels={"fleet": "f"})
    await exp.start([("n2", "host-2b", {"rack": "r9"})])
    exp.samples_committed("n1", [sample("n1", T0 - 100, 0.0)])
    await assert_eventually(lambda: len(sender.bodies) == 1)
    # Queued while the first request hangs, out of order (a daemon replaying its spool).
    exp.samples_committed("n1", [sample("n1", T0 + 20, 3.0), sample("n1", T0 + 10, 2.0)])
    exp.samples_committed("n2", [sample("n2", T0 + 5, 9.0)])
    exp.samples_committed("n1", [sample("n1", T0, 1.0), sample("n1", T0 + 20, 3.5)])
    gate.set()
    await assert_eventually(lambda: exp.stats.sent == 6)
    await exp.stop()
    series = dict(wire.decode(sender.bodies[1]))
    n1 = (
        ("__name__", "opsfleet_cpu_usage_percent"),
        ("env", "prod"),
        ("fleet", "f"),
        ("hostname", "host-1"),
        ("node_id", "n1"),
    )
    n2 = (
        ("__name__", "opsfleet_cpu_usage_percent"),
        ("fleet", "f"),
        ("hostname", "host-2b"),
        ("node_id", "n2"),
        ("rack", "r9"),
    )
    assert set(series) == {n1, n2}
    assert series[n1] == [(T0 * 1000, 1.0), ((T0 + 10) * 1000, 2.0), ((T0 + 20) * 1000, 3.5)]
    assert series[n2] == [((T0 + 5) * 1000, 9.0)]
    assert nodes.lookups == ["n1"]  # n2 came from the start-up list; n1 was read once


async def test_changed_node_is_read_again() -> None:
    sender = FakeSender()
    nodes = Nodes()
    exp = exporter(sender, nodes)
    await exp.start([("n1", "host-1", {"env": "prod"})])
    exp.samples_committed("n1", [sample("n1", T0, 1.0)])
    await assert_eventually(lambda: exp.stats.sent == 1)
    nodes.info["n1"] = ("host-1", {"env": "staging"})
    exp.node_changed("n1", {"env": "staging"})
    exp.samples_committed("n1", [sample("n1", T0 + 1, 1.0)])
    exp.samples_committed("gone", [sample("gone", T0 + 1, 1.0)])
    await assert_eventually(lambda: exp.stats.sent == 3)
    await exp.stop()
    labels = [dict(labels) for labels, _ in sender.series()]
    assert [lb.get("env") for lb in labels] == ["prod", "staging", None]
    assert labels[2] == {"__name__": "opsfleet_cpu_usage_percent", "node_id": "gone"}
    assert nodes.lookups == ["n1", "gone"]


async def test_stop_counts_unsent_samples_and_is_idempotent() -> None:
    never = FakeSender(gate=asyncio.Event())
    exp = exporter(never, timeout=0.2, batch_size=1)
    await exp.stop()  # safe before start
    exp = exporter(never, timeout=0.2, batch_size=1)
    await exp.start()
    exp.samples_committed("n1", [sample("n1", T0, 1.0), sample("n1", T0 + 1, 2.0)])
    await assert_eventually(lambda: len(never.bodies) == 1)
    await exp.stop()
    assert exp.stats.dropped == 2 and exp.stats.sent == 0 and exp.queued == 0
    exp.samples_committed("n1", [sample("n1", T0 + 2, 3.0)])
    assert exp.stats.dropped == 3 and len(never.bodies) == 1
    await exp.stop()
    assert never.closed


async def test_stop_ends_backoff_and_tries_the_queue_once() -> None:
    sender = FakeSender([UNAVAILABLE] * 10)
    exp = exporter(sender, retry_backoff=60, retry_backoff_max=60, batch_size=1, timeout=5)
    await exp.start()
    exp.samples_committed("n1", [sample("n1", T0, 1.0), sample("n1", T0 + 1, 2.0)])
    await assert_eventually(lambda: len(sender.bodies) == 1)  # now waiting 60 s to retry
    await asyncio.wait_for(exp.stop(), 5)
    assert len(sender.bodies) == 2 and exp.stats.failed == 2 and exp.stats.dropped == 0
