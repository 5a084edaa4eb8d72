"""A worker runs its share of nodes for the duration, drains, and reports (in-process, fake Manager)."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from opsfleet.simulator.calls import Method
from opsfleet.simulator.config import Mode, SimConfig
from opsfleet.simulator.fake import FakeManager
from opsfleet.simulator.worker import MSG_PROGRESS, STOP, Worker, WorkerSpec


class ListOutbox:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, obj: Any) -> None:
        self.items.append(obj)


async def test_fleet_worker_registers_its_share_and_reports() -> None:
    cfg = SimConfig(
        nodes=9, workers=2, duration=0.5, stagger=0.0, heartbeat_interval=0.05, metrics_interval=0.1, seed=1
    )
    manager = FakeManager()
    parent, child = multiprocessing.Pipe()
    outbox = ListOutbox()
    worker = Worker(WorkerSpec(1, cfg, inflight=4), manager, t0=time.time(), control=child, outbox=outbox)
    report = await worker.run()
    assert manager.started and manager.closed
    assert report.nodes == 4  # nodes 1, 3, 5, 7
    assert manager.registered == {"sim-000001", "sim-000003", "sim-000005", "sim-000007"}
    assert report.registered_nodes == 4
    assert report.failing_nodes == 0
    assert report.methods["RegisterNode"].ok == 4
    assert any(kind == MSG_PROGRESS for kind, _, _ in outbox.items)
    parent.close()


async def test_saturate_worker_measures_after_registration_and_stops_on_request() -> None:
    cfg = SimConfig(nodes=20, workers=1, duration=30.0, mode=Mode.SATURATE, seed=2)
    manager = FakeManager()
    parent, child = multiprocessing.Pipe()
    original = manager.heartbeat
    heartbeats = 0

    async def heartbeat_then_stop(node: Any, timestamp: int) -> str:
        nonlocal heartbeats
        heartbeats += 1
        if heartbeats == 200:
            parent.send(STOP)
        return await original(node, timestamp)

    manager.heartbeat = heartbeat_then_stop  # type: ignore[method-assign]
    worker = Worker(
        WorkerSpec(0, cfg, inflight=8), manager, t0=time.time(), control=child, outbox=ListOutbox()
    )
    report = await worker.run()
    assert report.registered_nodes == 20
    assert report.window_calls.get("RegisterNode", 0) == 0
    assert report.window_calls["Heartbeat"] >= 200
    assert manager.count(Method.METRICS) > 0
    parent.close()
