"""The daemon's link with several Manager addresses: it fails over when the one it uses
refuses connections or stops answering, and the spool carries the samples across.

Two proxies in front of one Manager stand for two replicas, so that each fault hits one
address only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from opsfleet.manager.app import ManagerApp
from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.helpers import assert_eventually
from tests.tcpproxy import TcpProxy


@pytest.fixture
async def replicas(apps: Any) -> AsyncIterator[tuple[ManagerApp, list[TcpProxy]]]:
    manager: ManagerApp = await apps.manager()
    proxies = [TcpProxy("127.0.0.1", manager.grpc_port) for _ in range(2)]
    for proxy in proxies:
        await proxy.start()
    yield manager, proxies
    for proxy in proxies:
        await proxy.close()


async def _failover(apps: Any, replicas: tuple[ManagerApp, list[TcpProxy]], fault: str) -> None:
    manager, proxies = replicas
    addresses = [f"127.0.0.1:{p.port}" for p in proxies]
    daemon = await apps.daemon(",".join(addresses), manager__timeout=1.0, manager__reconnect_max=2.0)
    link = daemon.link
    await assert_eventually(lambda: link.heartbeats_sent > 0, timeout=10)
    used = proxies[addresses.index(link.address)]
    other = addresses[1 - proxies.index(used)]
    samples_before = await manager.store.query_metrics(daemon.node_id, "memory", 0, 2**40)
    if fault == "refused":
        await used.cut()
    else:
        used.freeze()
    await assert_eventually(lambda: link.address == other, timeout=10)
    sent = link.heartbeats_sent
    await assert_eventually(lambda: link.heartbeats_sent > sent + 1, timeout=10)
    assert link.failovers == 1 and link.registrations == 1  # the other replica knows the node

    async def more_samples() -> bool:
        stored = await manager.store.query_metrics(daemon.node_id, "memory", 0, 2**40)
        return len(stored) > len(samples_before) + 2

    await assert_eventually(more_samples, timeout=10)


async def test_fails_over_when_the_manager_refuses(apps: Any, replicas: Any) -> None:
    await _failover(apps, replicas, "refused")


async def test_fails_over_when_the_manager_stops_answering(apps: Any, replicas: Any) -> None:
    await _failover(apps, replicas, "hung")


class PushingBack(manager_pb2_grpc.ManagerServiceServicer):
    """UNAVAILABLE with a 1 s retry pushback to the first two registrations (shedding load)."""

    def __init__(self) -> None:
        self.registrations = 0

    async def RegisterNode(self, request: Any, context: Any) -> manager_pb2.RegisterNodeResponse:
        self.registrations += 1
        if self.registrations <= 2:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", "1000"),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "shedding load")
        return manager_pb2.RegisterNodeResponse(success=True, message="ok")

    async def Heartbeat(self, request: Any, context: Any) -> manager_pb2.HeartbeatResponse:
        return manager_pb2.HeartbeatResponse(success=True)

    async def ReportMetrics(self, request: Any, context: Any) -> manager_pb2.ReportMetricsResponse:
        return manager_pb2.ReportMetricsResponse(success=True)


async def test_a_replica_pushing_back_is_not_left(apps: Any) -> None:
    servers, servicers, addresses = [], [], []
    for _ in range(2):
        servicer = PushingBack()
        server = grpc.aio.server()
        manager_pb2_grpc.add_ManagerServiceServicer_to_server(servicer, server)
        addresses.append(f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}")
        await server.start()
        servers.append(server)
        servicers.append(servicer)
    try:
        daemon = await apps.daemon(",".join(addresses))
        await assert_eventually(lambda: daemon.link.connected, timeout=10)
        used = servicers[addresses.index(daemon.link.address)]
        assert used.registrations == 3 and daemon.link.failovers == 0
    finally:
        for server in servers:
            await server.stop(None)
