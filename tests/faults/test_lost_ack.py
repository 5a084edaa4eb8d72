"""A ReportMetrics reply lost after the manager stored the batch: resent, stored exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.faults.support import figures, prefill_spool, publish, recent_samples, row_counts
from tests.helpers import assert_eventually

NO_COLLECTORS = {f"collectors__{name}__enabled": False for name in ("cpu", "memory", "disk", "network")}


class AckDroppingProxy(manager_pb2_grpc.ManagerServiceServicer):
    """Forwards every call to the real Manager; the reply of every other ReportMetrics is
    replaced by UNAVAILABLE after the Manager stored the batch (the acknowledgement is lost)."""

    def __init__(self, upstream: manager_pb2_grpc.ManagerServiceAsyncStub) -> None:
        self._up = upstream
        self.forwarded = 0
        self.acks_dropped = 0

    async def RegisterNode(self, request: Any, context: Any) -> manager_pb2.RegisterNodeResponse:
        return await self._up.RegisterNode(request)

    async def Heartbeat(self, request: Any, context: Any) -> manager_pb2.HeartbeatResponse:
        return await self._up.Heartbeat(request)

    async def ReportMetrics(self, request: Any, context: Any) -> manager_pb2.ReportMetricsResponse:
        reply: manager_pb2.ReportMetricsResponse = await self._up.ReportMetrics(request)
        self.forwarded += 1
        if self.forwarded % 2 == 1:
            self.acks_dropped += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset after forwarding")
        return reply


async def test_lost_acknowledgements_store_each_sample_once(apps: Any, tmp_path: Path) -> None:
    work = tmp_path / "node"
    records = recent_samples(400)
    prefill_spool(work, records)
    manager = await apps.manager(f"sqlite:///{tmp_path / 'm.db'}")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{manager.grpc_port}")
    proxy = AckDroppingProxy(manager_pb2_grpc.ManagerServiceStub(channel))
    server = grpc.aio.server()
    manager_pb2_grpc.add_ManagerServiceServicer_to_server(proxy, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        daemon = await apps.daemon(f"127.0.0.1:{port}", work_dir=work, spool__batch_size=50, **NO_COLLECTORS)

        async def drained() -> bool:
            return await daemon.outbox.pending() == 0

        await assert_eventually(drained, timeout=30, interval=0.2)
        await apps.stop(daemon)
    finally:
        await server.stop(None)
        await channel.close()
    await apps.stop(manager)

    counts = row_counts(tmp_path / "m.db", daemon.node_id)
    expected = {(r["type"], r["timestamp"]) for r in records}
    result = figures(daemon, counts, expected)
    publish(f"{result.line('lost-ack')} acks_dropped={proxy.acks_dropped}")
    assert proxy.acks_dropped >= 8  # every batch of 50 lost its first acknowledgement
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n != 1}
    assert result.sent >= len(records) + 8 * 50  # the unacknowledged batches really were resent
    assert result.duplicated == 0 and result.lost == 0
