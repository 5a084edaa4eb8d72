"""Offline after silence, back online on a heartbeat, no mass offline after a restart; durability."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsfleet.proto import manager_pb2
from tests.helpers import assert_eventually
from tests.integration.manager.support import Running

FAST = {"node.offline_after": "1s", "node.check_interval": "0.1s", "metrics.heartbeat_flush_interval": "0.1s"}


def reg(node_id: str) -> manager_pb2.RegisterNodeRequest:
    return manager_pb2.RegisterNodeRequest(node_id=node_id, hostname=f"h-{node_id}", ip="10.0.0.1")


async def status(r: Running, node_id: str) -> str:
    return (await r.app.nodes.get(node_id)).status.value


async def test_offline_after_silence_and_online_on_heartbeat(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    r: Running = await start_manager(database_url, **FAST)
    await r.manager.RegisterNode(reg("quiet"))
    await r.manager.RegisterNode(reg("chatty"))
    started = time.monotonic()

    async def chatty_alive_quiet_offline() -> bool:
        await r.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="chatty"))
        return await status(r, "quiet") == "offline"

    await assert_eventually(chatty_alive_quiet_offline, timeout=10, interval=0.2)
    assert time.monotonic() - started >= 1.0
    assert await status(r, "chatty") == "online"

    await r.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="quiet"))
    await assert_eventually(lambda: _is(r, "quiet", "online"), timeout=5)
    kinds = [e.kind.value for e in await r.app.nodes.events("quiet")]
    assert kinds[:3] == ["online", "offline", "registered"]


async def _is(r: Running, node_id: str, want: str) -> bool:
    return await status(r, node_id) == want


async def test_registered_node_without_heartbeat_goes_offline(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    r: Running = await start_manager(database_url, **FAST)
    await r.manager.RegisterNode(reg("silent"))
    await assert_eventually(lambda: _is(r, "silent", "offline"), timeout=10)


async def test_no_mass_offline_right_after_restart(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    slow = dict(FAST, **{"node.offline_after": "3s"})
    first: Running = await start_manager(database_url, **slow)
    for i in range(20):
        await first.manager.RegisterNode(reg(f"n{i}"))
    await first.channel.close()
    await first.app.stop()
    # Make every node look long silent, as after a long manager outage.
    await _age_all_nodes(database_url, seconds=3600)

    second: Running = await start_manager(database_url, **slow)
    restarted = time.monotonic()
    # During the first offline_after after start nobody is declared offline ...
    while time.monotonic() - restarted < 2.0:
        nodes = await second.app.nodes.list_all()
        assert all(n.status.value == "online" for n in nodes)
        for i in range(10):
            await second.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id=f"n{i}"))
        await asyncio.sleep(0.2)  # observation window, not synchronisation

    # ... after it, only the nodes that stayed silent are.
    async def half_offline() -> bool:
        for i in range(10):
            await second.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id=f"n{i}"))
        nodes = {n.node_id: n.status.value for n in await second.app.nodes.list_all()}
        return all(nodes[f"n{i}"] == "offline" for i in range(10, 20)) and all(
            nodes[f"n{i}"] == "online" for i in range(10)
        )

    await assert_eventually(half_offline, timeout=10, interval=0.2)


async def test_samples_survive_manager_restart(database_url: str, start_manager: Callable[..., Any]) -> None:
    first: Running = await start_manager(database_url)
    await first.manager.RegisterNode(reg("durable"))
    t0 = int(time.time()) - 600
    metrics = [
        manager_pb2.MetricData(type="cpu", timestamp=t0 + i, values={"usage_percent": float(i)})
        for i in range(50)
    ]
    reply = await first.manager.ReportMetrics(
        manager_pb2.ReportMetricsRequest(node_id="durable", metrics=metrics)
    )
    assert reply.success
    await first.channel.close()
    await first.app.stop()

    second: Running = await start_manager(database_url)
    samples = await second.app.store.query_metrics("durable", "cpu", t0, t0 + 100)
    assert [s.values["usage_percent"] for s in samples] == [float(i) for i in range(50)]
    assert (await second.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="durable"))).success


async def _age_all_nodes(database_url: str, seconds: float) -> None:
    import sqlalchemy as sa

    from opsfleet.manager.config import DatabaseSection, resolve_database_url
    from opsfleet.manager.store.sql import SqlStore

    store = SqlStore(resolve_database_url(DatabaseSection(url=database_url), Path("/nonexistent")))
    await store.start()
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE nodes SET last_seen_at = last_seen_at - :s"), {"s": seconds})
    await store.close()
