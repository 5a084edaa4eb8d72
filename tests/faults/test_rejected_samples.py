"""One bad sample never costs the good ones: per-sample isolation on both sides."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import grpc

from opsfleet.common.backoff import Backoff
from opsfleet.daemon.delivery import Delivery
from opsfleet.daemon.outbox import Outbox
from opsfleet.daemon.spool import Spool
from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.faults.support import ScriptedManager, prefill_spool, recent_samples
from tests.helpers import assert_eventually, scripted_manager

NO_COLLECTORS = {f"collectors__{name}__enabled": False for name in ("cpu", "memory", "disk", "network")}


async def test_one_sample_older_than_retention_among_good_ones(apps: Any, tmp_path: Path) -> None:
    work = tmp_path / "node"
    records = recent_samples(60)
    # The daemon cannot know the manager's retention (30 days): only the manager rejects this one.
    records[30] = {
        "type": "custom.fault",
        "timestamp": int(time.time()) - 40 * 86400,
        "values": {"seq": -1.0},
    }
    prefill_spool(work, records)
    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", work_dir=work, **NO_COLLECTORS)

    async def drained() -> bool:
        return await daemon.outbox.pending() == 0

    await assert_eventually(drained, timeout=10)
    stored = await manager.store.query_metrics(daemon.node_id, "custom.fault", 0, 2**40)
    assert {s.timestamp for s in stored} == {r["timestamp"] for i, r in enumerate(records) if i != 30}
    assert daemon.outbox.quarantine.total == 1
    assert daemon.link.delivery.calls <= 3  # the manager named the index: no bisection needed


async def test_plus_and_minus_infinity_in_one_map_are_dropped_and_counted(apps: Any) -> None:
    manager = await apps.manager()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{manager.grpc_port}") as channel:
        stub = manager_pb2_grpc.ManagerServiceStub(channel)
        await stub.RegisterNode(manager_pb2.RegisterNodeRequest(node_id="poison", hostname="h"))
        now = int(time.time())
        reply = await stub.ReportMetrics(
            manager_pb2.ReportMetricsRequest(
                node_id="poison",
                metrics=[
                    manager_pb2.MetricData(
                        type="cpu", timestamp=now, values={"a": math.inf, "b": -math.inf, "idle": 5.0}
                    ),
                    manager_pb2.MetricData(type="memory", timestamp=now, values={"used_bytes": 1.0}),
                ],
            )
        )
    assert reply.success and reply.accepted == 2 and reply.dropped_values == 2
    assert "dropped 2 non-finite values" in reply.message
    [cpu] = await manager.store.query_metrics("poison", "cpu", 0, 2**40)
    assert cpu.values == {"idle": 5.0}


async def test_daemon_drops_non_finite_values_of_spooled_records(apps: Any, tmp_path: Path) -> None:
    work = tmp_path / "node"
    now = int(time.time())
    poison = {"type": "cpu", "timestamp": now - 5, "values": {"a": math.inf, "b": -math.inf, "idle": 3.0}}
    prefill_spool(work, [poison, *recent_samples(5)])
    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", work_dir=work, **NO_COLLECTORS)
    cpu = await assert_eventually(lambda: manager.store.query_metrics(daemon.node_id, "cpu", 0, 2**40))
    assert [s.values for s in cpu] == [{"idle": 3.0}]
    await assert_eventually(lambda: manager.store.count_metrics(daemon.node_id), timeout=5)
    assert await manager.store.count_metrics(daemon.node_id) == 6


class RejectsNetwork(ScriptedManager):
    """Rejects every batch holding a `network` sample with INVALID_ARGUMENT, naming no index
    (like a manager older than the ``metrics[<i>]`` message format)."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, set[int]] = {}
        self.calls = 0

    async def ReportMetrics(self, request: Any, context: Any) -> manager_pb2.ReportMetricsResponse:
        self.calls += 1
        if any(m.type == "network" for m in request.metrics):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad network sample")
        for m in request.metrics:
            self.stored.setdefault(m.type, set()).add(m.timestamp)
        return manager_pb2.ReportMetricsResponse(success=True, message="ok")


async def test_manager_rejecting_every_network_batch_without_index(apps: Any) -> None:
    servicer = RejectsNetwork()
    async with scripted_manager(servicer) as port:
        daemon = await apps.daemon(f"127.0.0.1:{port}")
        await assert_eventually(lambda: daemon.link.connected, timeout=10)
        started = time.monotonic()
        calls_before = servicer.calls
        taken_before = daemon.sampler.samples_taken
        await asyncio.sleep(6)  # the window whose delivery is checked: collectors run every second
        elapsed = time.monotonic() - started
        await daemon.sampler.stop()  # nothing new while the last samples are checked
        taken = daemon.sampler.samples_taken - taken_before

        async def caught_up() -> bool:
            return await daemon.outbox.pending() == 0

        await assert_eventually(caught_up, timeout=10)
        await apps.stop(daemon)
    # Continuous: every cpu, memory and disk sample taken reached the manager ...
    appended = daemon.outbox.appended
    delivered = sum(len(servicer.stored.get(t, set())) for t in ("cpu", "memory", "disk"))
    network = daemon.outbox.quarantine.total
    assert "network" not in servicer.stored
    assert delivered + network == appended, (delivered, network, appended)
    for type_ in ("cpu", "memory", "disk"):
        stamps = sorted(servicer.stored[type_])
        assert len(stamps) >= elapsed - 2, (type_, stamps)
    # ... with a bounded call rate: bisection costs a few calls per network sample, no retry loop.
    window_calls = servicer.calls - calls_before
    assert taken > 0 and window_calls <= 2 * taken + 5, (window_calls, taken)
    assert servicer.calls <= 2 * appended + 10
    assert servicer.registrations == 1


class StallsAfterRejecting(RejectsNetwork):
    """Rejects network batches; the first good batch after a rejection hangs (the session ends
    there, as when the link drops mid-batch) until ``stall`` is cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.stall = True
        self.stalled = asyncio.Event()

    async def ReportMetrics(self, request: Any, context: Any) -> manager_pb2.ReportMetricsResponse:
        if self.stall and not any(m.type == "network" for m in request.metrics):
            self.stalled.set()
            await asyncio.Event().wait()  # until the caller gives up
        return await super().ReportMetrics(request, context)


async def test_sample_rejected_in_a_session_that_ends_mid_batch_is_quarantined_once(tmp_path: Path) -> None:
    servicer = StallsAfterRejecting()
    now = int(time.time())
    records = [
        {"type": "network", "timestamp": now - 2, "values": {"rx_bytes": 1.0}},
        {"type": "cpu", "timestamp": now - 1, "values": {"usage_percent": 5.0}},
    ]
    outbox = Outbox(Spool(tmp_path / "spool"))
    await outbox.put(records)
    delivery = Delivery(
        outbox=outbox,
        node_id="n1",
        timeout=5.0,
        backoff=Backoff(base=0.05, cap=0.2),
        stop=asyncio.Event(),
        batch_size=lambda: 100,
        quarantine=outbox.quarantine,
    )
    try:
        async with (
            scripted_manager(servicer) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = manager_pb2_grpc.ManagerServiceStub(channel)
            session = asyncio.create_task(delivery.run(stub))
            await asyncio.wait_for(servicer.stalled.wait(), timeout=10)  # network judged, cpu in flight
            session.cancel()  # the link ends the session
            await asyncio.gather(session, return_exceptions=True)
            servicer.stall = False
            session = asyncio.create_task(delivery.run(stub))  # the next session resends the batch

            async def drained() -> bool:
                return await outbox.pending() == 0

            await assert_eventually(drained, timeout=10)
            session.cancel()
            await asyncio.gather(session, return_exceptions=True)
    finally:
        await outbox.close()
    assert servicer.stored == {"cpu": {now - 1}}
    # One network sample, judged in both sessions, is one quarantined sample (two before).
    assert outbox.quarantine.total == 1
    assert outbox.delivered + outbox.quarantine.total == outbox.appended == 2


async def test_manager_names_index_and_field_of_the_first_bad_sample(apps: Any) -> None:
    manager = await apps.manager()
    now = int(time.time())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{manager.grpc_port}") as channel:
        stub = manager_pb2_grpc.ManagerServiceStub(channel)
        await stub.RegisterNode(manager_pb2.RegisterNodeRequest(node_id="n1", hostname="h"))
        for bad_ts, reason in ((now + 3600, "in the future"), (now - 31 * 86400, "older than the retention")):
            metrics = [
                manager_pb2.MetricData(type="cpu", timestamp=now - 2, values={"idle": 1.0}),
                manager_pb2.MetricData(type="cpu", timestamp=now - 1, values={"idle": 1.0}),
                manager_pb2.MetricData(type="cpu", timestamp=bad_ts, values={"idle": 1.0}),
            ]
            try:
                await stub.ReportMetrics(manager_pb2.ReportMetricsRequest(node_id="n1", metrics=metrics))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (exc.details() or "").startswith("metrics[2].timestamp: "), exc.details()
                assert reason in (exc.details() or "")
            else:
                raise AssertionError(f"timestamp {bad_ts} accepted")
    assert await manager.store.count_metrics("n1") == 0
