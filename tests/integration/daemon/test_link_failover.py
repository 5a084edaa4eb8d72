"""The daemon's link with several Manager addresses: it fails over when the one it uses
refuses connections or stops answering, and the spool carries the samples across.

Two proxies in front of one Manager stand for two replicas, so that each fault hits one
address only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsfleet.manager.app import ManagerApp
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
