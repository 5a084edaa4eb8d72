"""Two Manager replicas on one PostgreSQL database (SQLite allows one Manager: test_single_sqlite)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from opsfleet.proto import manager_pb2
from tests.helpers import assert_eventually
from tests.integration.manager.support import Running

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

COHERENCE_BOUND = 2.0  # seconds for a change through one replica to reach the others' caches
FAST = {"node.offline_after": "1s", "node.check_interval": "0.1s", "metrics.heartbeat_flush_interval": "0.1s"}


async def test_replicas_share_nodes_and_liveness(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    a: Running = await start_manager(database_url, **FAST)
    await assert_eventually(lambda: a.app.leadership.is_leader)
    b: Running = await start_manager(database_url, **FAST)
    await a.manager.RegisterNode(manager_pb2.RegisterNodeRequest(node_id="n1", hostname="h", ip="10.0.0.1"))
    # A node registered through replica A may heartbeat through replica B: the leader (A)
    # reads last_seen_at from the database and keeps it online while B flushes heartbeats.
    started = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - started < 3.0:  # 3 x offline_after
        assert (await b.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1"))).success
        assert (await a.app.nodes.get("n1")).status.value == "online"
        await asyncio.sleep(0.2)
    assert not b.app.leadership.is_leader

    # Only the leader detects silence; the transition is recorded once.
    async def offline() -> bool:
        return (await a.app.nodes.get("n1")).status.value == "offline"

    await assert_eventually(offline, timeout=10)
    await b.app.nodes.check_liveness()
    await a.app.nodes.check_liveness()
    kinds = [e.kind.value for e in await a.app.nodes.events("n1")]
    assert kinds.count("offline") == 1

    # A node deleted elsewhere is forgotten by B after its next flush: NOT_FOUND, the daemon re-registers.
    async with a.app.store.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM nodes WHERE node_id = 'n1'"))
    await b.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1"))
    await b.app.nodes.flush()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await b.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_node_deleted_and_policy_changed_reach_other_replicas(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    a: Running = await start_manager(database_url)
    b: Running = await start_manager(database_url)
    await a.manager.RegisterNode(manager_pb2.RegisterNodeRequest(node_id="n1", hostname="h", ip="10.0.0.1"))
    assert (await b.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1"))).success
    await b.app.nodes.flush()

    await a.app.fleet.delete_node("n1")
    await assert_eventually(lambda: b.app.changes.received >= 1, timeout=COHERENCE_BOUND)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await b.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    policy = {"name": "web", "selector": {"role": "web"}, "priority": 0, "config": {"agents": []}}
    await a.app.policies.apply(policy, "alice")
    await assert_eventually(
        lambda: [p.name for p in b.app.policies.current()] == ["web"], timeout=COHERENCE_BOUND
    )


async def test_offline_alert_resolves_through_any_replica_and_survives_a_new_leader(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    fast = {**FAST, "alerts.evaluation_interval": "0.1s"}
    a: Running = await start_manager(database_url, **fast)
    await assert_eventually(lambda: a.app.leadership.is_leader)
    b: Running = await start_manager(database_url, **fast)
    await b.manager.RegisterNode(manager_pb2.RegisterNodeRequest(node_id="n1", hostname="h", ip="10.0.0.1"))
    beat = manager_pb2.HeartbeatRequest(node_id="n1")

    async def firing_offline() -> int:
        page = await b.app.alerts.search(1, 50, state="firing", rule="node_offline")
        return page.total

    async def none_firing() -> bool:
        return await firing_offline() == 0

    async def one_firing() -> bool:
        return await firing_offline() == 1

    # Silent: the leader (A) fires the alert (its state first, the stored alert a moment later:
    # the transition is written after the evaluation). Back through B: the leader resolves it.
    await assert_eventually(lambda: "n1" in a.app.alerts.offline_nodes(), timeout=10)
    await assert_eventually(one_firing, timeout=5)
    await b.manager.Heartbeat(beat)
    await assert_eventually(lambda: "n1" not in a.app.alerts.offline_nodes(), timeout=5)
    await assert_eventually(none_firing, timeout=5)

    # Silent again, then the leader goes away: B is elected, takes the firing alert over and
    # resolves it when the node is back.
    await assert_eventually(lambda: "n1" in a.app.alerts.offline_nodes(), timeout=10)
    await a.app.stop()
    await assert_eventually(lambda: b.app.leadership.is_leader, timeout=5)
    await assert_eventually(lambda: "n1" in b.app.alerts.offline_nodes(), timeout=5)
    await b.manager.Heartbeat(beat)
    await assert_eventually(none_firing, timeout=5)
    kinds = [e.kind.value for e in await b.app.nodes.events("n1")]
    assert kinds.count("offline") == 2 and kinds.count("online") == 2
