"""Every ManagerService / DaemonService RPC of the Manager, success and error paths, on both backends."""

from __future__ import annotations

import json
import math
import time

import grpc
import pytest

from opsfleet.proto import daemon_pb2, manager_pb2
from tests.integration.manager.support import Running

# Recent timestamps: retention (30 days by default) must not touch test samples.
T0 = int(time.time()) - 3600


def reg(node_id: str = "node-1", **kw: object) -> manager_pb2.RegisterNodeRequest:
    fields: dict[str, object] = {
        "node_id": node_id,
        "hostname": "host-1",
        "ip": "10.0.0.5",
        "os": "linux",
        "arch": "amd64",
        "labels": {"env": "test", "rack": "r1"},
        "daemon_version": "0.1.0",
        "agent_version": "1.0",
    }
    fields.update(kw)
    return manager_pb2.RegisterNodeRequest(**fields)  # type: ignore[arg-type]


async def expect_code(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    return info.value


async def test_register_heartbeat_and_metrics(running: Running) -> None:
    resp = await running.manager.RegisterNode(reg())
    assert resp.success and "registered" in resp.message
    node = await running.app.nodes.get("node-1")
    assert (
        node.hostname == "host-1" and node.ip == "10.0.0.5" and node.labels == {"env": "test", "rack": "r1"}
    )
    assert node.status == "online"

    hb = await running.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="node-1", timestamp=1))
    assert hb.success

    metrics = [
        manager_pb2.MetricData(type="cpu", timestamp=T0, values={"usage_percent": 12.5}),
        manager_pb2.MetricData(type="memory", timestamp=T0, values={"used_bytes": 1e9}),
        manager_pb2.MetricData(type="custom.gpu_0", timestamp=T0, values={"temp": 60}),
    ]
    out = await running.manager.ReportMetrics(
        manager_pb2.ReportMetricsRequest(node_id="node-1", metrics=metrics)
    )
    assert out.success and out.accepted == 3 and out.dropped_values == 0
    stored = await running.app.store.query_metrics("node-1", "cpu", T0, T0)
    assert [s.values for s in stored] == [{"usage_percent": 12.5}]
    assert len(await running.app.store.query_metrics("node-1", "custom.gpu_0", T0, T0)) == 1


async def test_reregistration_is_idempotent_and_keeps_history(running: Running) -> None:
    await running.manager.RegisterNode(reg())
    m = manager_pb2.MetricData(type="cpu", timestamp=T0 + 100, values={"usage_percent": 1.0})
    await running.manager.ReportMetrics(manager_pb2.ReportMetricsRequest(node_id="node-1", metrics=[m]))
    first = await running.app.nodes.get("node-1")
    again = await running.manager.RegisterNode(reg(ip="10.0.0.6", labels={"env": "prod"}))
    assert again.success and "re-registered" in again.message
    node = await running.app.nodes.get("node-1")
    assert node.registered_at == first.registered_at
    assert node.ip == "10.0.0.6" and node.labels == {"env": "prod"}
    assert len(await running.app.store.list_nodes()) == 1
    assert await running.app.store.count_metrics("node-1") == 1
    kinds = [e.kind for e in await running.app.nodes.events("node-1")]
    assert kinds == ["re-registered", "registered"]


async def test_duplicate_samples_are_stored_once(running: Running) -> None:
    await running.manager.RegisterNode(reg())
    m = manager_pb2.MetricData(type="cpu", timestamp=T0 + 500, values={"usage_percent": 3.0})
    req = manager_pb2.ReportMetricsRequest(node_id="node-1", metrics=[m, m])
    for _ in range(3):
        assert (await running.manager.ReportMetrics(req)).success
    assert await running.app.store.count_metrics("node-1") == 1


async def test_non_finite_values_are_dropped_and_counted(running: Running) -> None:
    await running.manager.RegisterNode(reg())
    m = manager_pb2.MetricData(
        type="cpu", timestamp=T0 + 10, values={"usage_percent": math.nan, "user": math.inf, "idle": 5.0}
    )
    out = await running.manager.ReportMetrics(manager_pb2.ReportMetricsRequest(node_id="node-1", metrics=[m]))
    assert out.success and out.dropped_values == 2 and "dropped 2" in out.message
    stored = await running.app.store.query_metrics("node-1", "cpu", T0, T0 + 100)
    assert stored[0].values == {"idle": 5.0}


@pytest.mark.parametrize(
    ("request_kw", "needle"),
    [
        ({"node_id": ""}, "node_id"),
        ({"node_id": "x" * 129}, "node_id"),
        ({"node_id": "bad id/with slash"}, "node_id"),
        ({"hostname": ""}, "hostname"),
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "labels"),
        ({"labels": {"k" * 64: "v"}}, "label key"),
        ({"labels": {"k": "v" * 256}}, "value"),
    ],
)
async def test_register_rejects_malformed_input(
    running: Running, request_kw: dict[str, object], needle: str
) -> None:
    err = await expect_code(running.manager.RegisterNode(reg(**request_kw)), grpc.StatusCode.INVALID_ARGUMENT)
    assert needle in (err.details() or "")
    assert await running.app.store.list_nodes() == []


async def test_metrics_rejects_malformed_input_and_keeps_nothing(running: Running) -> None:
    await running.manager.RegisterNode(reg())
    good = manager_pb2.MetricData(type="cpu", timestamp=T0, values={"usage_percent": 1.0})
    bad_type = manager_pb2.MetricData(type="CPU!", timestamp=T0, values={"x": 1.0})
    too_many_values = manager_pb2.MetricData(
        type="cpu", timestamp=T0, values={f"k{i}": 1.0 for i in range(257)}
    )
    cases = [
        [good, bad_type],
        [too_many_values],
        [good] * 1001,
        [manager_pb2.MetricData(type="x" * 33, timestamp=T0, values={})],
    ]
    for metrics in cases:
        await expect_code(
            running.manager.ReportMetrics(
                manager_pb2.ReportMetricsRequest(node_id="node-1", metrics=metrics)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    assert await running.app.store.count_metrics() == 0


async def test_unknown_node_is_not_found(running: Running) -> None:
    await expect_code(
        running.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="ghost")), grpc.StatusCode.NOT_FOUND
    )
    await expect_code(
        running.manager.ReportMetrics(
            manager_pb2.ReportMetricsRequest(
                node_id="ghost", metrics=[manager_pb2.MetricData(type="cpu", timestamp=1, values={"a": 1})]
            )
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_code(
        running.daemon.Heartbeat(daemon_pb2.HeartbeatRequest(node_id="ghost")), grpc.StatusCode.NOT_FOUND
    )
    await expect_code(
        running.daemon.ReportMetrics(daemon_pb2.MetricsRequest(node_id="ghost", data=b"{}")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_code(
        running.daemon.GetConfig(daemon_pb2.ConfigRequest(node_id="ghost")), grpc.StatusCode.NOT_FOUND
    )
    await expect_code(
        running.daemon.SyncAgentStates(daemon_pb2.SyncAgentStatesRequest(node_id="ghost")),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await running.app.store.list_nodes() == []


async def test_daemon_service_register_assigns_stable_ids(running: Running) -> None:
    req = daemon_pb2.RegisterRequest(
        hostname="h2", ip="10.1.1.1", os="linux", arch="arm64", labels={"a": "b"}
    )
    first = await running.daemon.Register(req)
    assert first.success and first.node_id
    second = await running.daemon.Register(req)
    assert second.node_id == first.node_id
    other = await running.daemon.Register(daemon_pb2.RegisterRequest(hostname="h3", ip="10.1.1.2"))
    assert other.node_id != first.node_id
    await expect_code(
        running.daemon.Register(daemon_pb2.RegisterRequest(hostname="")), grpc.StatusCode.INVALID_ARGUMENT
    )

    hb = await running.daemon.Heartbeat(daemon_pb2.HeartbeatRequest(node_id=first.node_id, status="healthy"))
    assert hb.success


async def test_daemon_service_metrics_json(running: Running) -> None:
    node_id = (await running.daemon.Register(daemon_pb2.RegisterRequest(hostname="h", ip="1.2.3.4"))).node_id
    doc = {"cpu": {"usage_percent": 40.0, "cores": 4}, "memory": {"usage_percent": 50.5}}
    resp = await running.daemon.ReportMetrics(
        daemon_pb2.MetricsRequest(node_id=node_id, timestamp=T0, data=json.dumps(doc).encode())
    )
    assert resp.success
    cpu = await running.app.store.query_metrics(node_id, "cpu", T0, T0)
    assert cpu[0].values == {"usage_percent": 40.0, "cores": 4.0}
    for bad in (b"{not json", b"[1,2]", b'{"cpu": 5}', b'{"cpu": {"a": "x"}}', b'{"Bad Type": {"a": 1}}'):
        await expect_code(
            running.daemon.ReportMetrics(daemon_pb2.MetricsRequest(node_id=node_id, timestamp=1, data=bad)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    assert await running.app.store.count_metrics(node_id) == 2


async def test_get_config_and_sync_agent_states(running: Running) -> None:
    await running.manager.RegisterNode(reg())
    cfg = await running.daemon.GetConfig(daemon_pb2.ConfigRequest(node_id="node-1", config_type="daemon"))
    assert cfg.success and cfg.config_data == b""
    await expect_code(
        running.daemon.GetConfig(daemon_pb2.ConfigRequest(node_id="node-1", config_type="weird")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    states = [
        daemon_pb2.AgentState(
            agent_id="fb", status="running", pid=10, last_heartbeat=5, type="filebeat", version="8"
        ),
        daemon_pb2.AgentState(agent_id="tg", status="stopped", type="telegraf"),
    ]
    ok = await running.daemon.SyncAgentStates(
        daemon_pb2.SyncAgentStatesRequest(node_id="node-1", states=states)
    )
    assert ok.success
    agents = {a.agent_id: a for a in await running.app.agents.list_stored("node-1")}
    assert agents["fb"].status == "running" and agents["fb"].pid == 10 and agents["fb"].version == "8"
    assert agents["tg"].status == "stopped"
    await running.daemon.SyncAgentStates(
        daemon_pb2.SyncAgentStatesRequest(node_id="node-1", states=states[:1])
    )
    agents = {a.agent_id: a for a in await running.app.agents.list_stored("node-1")}
    assert agents["tg"].status == "removed"
    await expect_code(
        running.daemon.SyncAgentStates(
            daemon_pb2.SyncAgentStatesRequest(node_id="node-1", states=[daemon_pb2.AgentState(agent_id="")])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_daemon_side_rpcs_are_unimplemented(running: Running) -> None:
    await expect_code(
        running.daemon.ListAgents(daemon_pb2.ListAgentsRequest()), grpc.StatusCode.UNIMPLEMENTED
    )
    await expect_code(
        running.daemon.OperateAgent(daemon_pb2.AgentOperationRequest(agent_id="a", operation="start")),
        grpc.StatusCode.UNIMPLEMENTED,
    )
    await expect_code(
        running.daemon.GetAgentMetrics(daemon_pb2.AgentMetricsRequest(agent_id="a")),
        grpc.StatusCode.UNIMPLEMENTED,
    )
    await expect_code(running.daemon.PushUpdate(daemon_pb2.UpdateRequest()), grpc.StatusCode.UNIMPLEMENTED)


async def test_oversized_message_is_refused(running: Running) -> None:
    await running.manager.RegisterNode(reg())
    huge = manager_pb2.MetricData(type="cpu", timestamp=T0, values={"k": 1.0})
    labels = {"x": "y" * (5 * 1024 * 1024)}
    await expect_code(running.manager.RegisterNode(reg(labels=labels)), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert (
        await running.manager.ReportMetrics(
            manager_pb2.ReportMetricsRequest(node_id="node-1", metrics=[huge])
        )
    ).success


async def test_unchanged_agent_snapshots_are_not_rewritten(running: Running) -> None:
    await running.manager.RegisterNode(reg())
    states = [daemon_pb2.AgentState(agent_id="fb", status="running", pid=10, type="filebeat")]
    request = daemon_pb2.SyncAgentStatesRequest(node_id="node-1", states=states)
    for _ in range(3):
        assert (await running.daemon.SyncAgentStates(request)).success
    assert running.app.agents.writes_skipped == 2
    changed = [daemon_pb2.AgentState(agent_id="fb", status="stopped", pid=0, type="filebeat")]
    await running.daemon.SyncAgentStates(daemon_pb2.SyncAgentStatesRequest(node_id="node-1", states=changed))
    assert [a.status for a in await running.app.agents.list_stored("node-1")] == ["stopped"]
    # A node deleted and registered again gets its snapshot written even if it equals the cached one.
    await running.app.fleet.delete_node("node-1")
    await running.manager.RegisterNode(reg())
    await running.daemon.SyncAgentStates(daemon_pb2.SyncAgentStatesRequest(node_id="node-1", states=changed))
    assert [a.status for a in await running.app.agents.list_stored("node-1")] == ["stopped"]
