"""Input rules close to the database: every stored string is bounded and free of control
characters, ids are not path tricks, and every malformed input is INVALID_ARGUMENT naming the
field, with no SQL or stack text, on both backends."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import grpc
import pytest

from opsfleet.proto import daemon_pb2, manager_pb2
from tests.integration.manager.support import Running

LEAKS = ("INSERT", "SELECT", "[SQL", "Traceback", 'File "', "sqlalchemy", "asyncpg", "sqlite3")


def _reg(**overrides: Any) -> manager_pb2.RegisterNodeRequest:
    fields: dict[str, Any] = {
        "node_id": "n1",
        "hostname": "host-1",
        "ip": "10.0.0.1",
        "os": "linux",
        "arch": "amd64",
        "labels": {"env": "test"},
        "daemon_version": "1.0",
        "agent_version": "1.0",
        "daemon_address": "10.0.0.1:9091",
    }
    fields.update(overrides)
    return manager_pb2.RegisterNodeRequest(**fields)


async def _invalid(call: Any, field: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    details = info.value.details() or ""
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (info.value.code(), details)
    assert field in details, details
    for leak in LEAKS:
        assert leak not in details, details
    return details


BAD_REGISTRATIONS: list[tuple[dict[str, Any], str]] = [
    ({"daemon_address": "h" * 251 + ":9091"}, "daemon_address"),
    ({"hostname": "host\x00one"}, "hostname"),
    ({"hostname": "host\nnode n9 online"}, "hostname"),
    ({"os": "linux\x00"}, "os"),
    ({"arch": "amd64\r"}, "arch"),
    ({"ip": "10.0.0.1\x1b[31m"}, "ip"),
    ({"daemon_version": "1.0\x7f"}, "daemon_version"),
    ({"agent_version": "1.0\u2028x"}, "agent_version"),
    ({"labels": {"env": "prod\x00"}}, "label 'env' value"),
    ({"labels": {"e\x00nv": "prod"}}, "label key"),
    ({"node_id": ".."}, "node_id"),
    ({"node_id": "."}, "node_id"),
]


async def test_register_node_rejects_bad_strings(running: Running) -> None:
    for overrides, field in BAD_REGISTRATIONS:
        await _invalid(running.manager.RegisterNode(_reg(**overrides)), field)
    assert await running.app.store.list_nodes() == []
    await running.manager.RegisterNode(_reg(daemon_address="h" * 250 + ":9091"))  # 255: the column size


async def test_daemon_register_rejects_bad_strings(running: Running) -> None:
    request = daemon_pb2.RegisterRequest(hostname="h", ip="10.0.0.2", os="linux\x00", arch="x")
    await _invalid(running.daemon.Register(request), "os")
    request = daemon_pb2.RegisterRequest(hostname="h", ip="10.0.0.2", labels={"k": "v\x00"})
    await _invalid(running.daemon.Register(request), "label 'k' value")
    request = daemon_pb2.RegisterRequest(hostname="h", ip="1" * 65)
    await _invalid(running.daemon.Register(request), "ip")
    assert await running.app.store.list_nodes() == []


async def test_metric_value_key_with_nul_is_rejected(running: Running) -> None:
    await running.manager.RegisterNode(_reg())
    now = int(time.time())
    metric = manager_pb2.MetricData(type="cpu", timestamp=now, values={"usage\x00percent": 1.0})
    request = manager_pb2.ReportMetricsRequest(node_id="n1", metrics=[metric])
    await _invalid(running.manager.ReportMetrics(request), "metrics[0]")
    assert await running.app.store.count_metrics() == 0


async def test_sync_agent_states_rejects_bad_strings(running: Running) -> None:
    await running.manager.RegisterNode(_reg())
    cases = [
        (daemon_pb2.AgentState(agent_id="a1", status="running", type="exp\x00orter"), "states[0].type"),
        (daemon_pb2.AgentState(agent_id="a1", status="r" * 33), "states[0].status"),
        (daemon_pb2.AgentState(agent_id="a1", status="running", version="1\n2"), "states[0].version"),
        (daemon_pb2.AgentState(agent_id="..", status="running"), "states[0].agent_id"),
    ]
    for state, field in cases:
        request = daemon_pb2.SyncAgentStatesRequest(node_id="n1", states=[state])
        await _invalid(running.daemon.SyncAgentStates(request), field)
    assert await running.app.store.list_agents("n1") == []


async def test_get_config_type_is_checked(running: Running) -> None:
    await running.manager.RegisterNode(_reg())
    request = daemon_pb2.ConfigRequest(node_id="n1", config_type="x\x00" * 100)
    details = await _invalid(running.daemon.GetConfig(request), "config_type")
    assert "\x00" not in details


async def test_newline_in_hostname_forges_no_log_line(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opsfleet")
    forged = "host\nnode admin-box registered (hostname=x ip=y)"
    await _invalid(running.manager.RegisterNode(_reg(node_id="victim", hostname=forged)), "hostname")
    lines = [line for record in caplog.records for line in record.getMessage().splitlines()]
    assert not any(line.startswith("node admin-box") for line in lines), lines


def _doc(data: bytes) -> daemon_pb2.MetricsRequest:
    return daemon_pb2.MetricsRequest(node_id="n1", timestamp=int(time.time()), data=data)


BAD_DOCUMENTS: list[tuple[bytes, str]] = [
    (b'{"cpu": {"usage_percent": ' + b"9" * 400 + b"}}", "data"),
    (b'{"cpu": {"usage_percent": -' + b"1" * 5000 + b"}}", "data"),
    (b"[" * 10_000 + b"]" * 10_000, "data"),
    (b'{"cpu": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001, "data"),
    (b'{"cpu": {"usage_percent": 1.0}}\xff\xfe', "data"),
    (b"\xc3\x28", "data"),
    (b'{"cpu": [1, 2]}', "data"),
    (b'{"cpu": {"usage_percent": "high"}}', "usage_percent"),
    (b'{"cpu": {"\\ud800": 1.0}}', "metrics[0].values"),
    (b'{"cpu": {"a\\u0000b": 1.0}}', "metrics[0].values"),
    (b"null", "data"),
]


async def test_daemon_report_metrics_parse_failures(running: Running) -> None:
    await running.manager.RegisterNode(_reg())
    for data, field in BAD_DOCUMENTS:
        await _invalid(running.daemon.ReportMetrics(_doc(data)), field)
    assert await running.app.store.count_metrics() == 0


async def test_daemon_report_metrics_still_accepts_a_good_document(running: Running) -> None:
    await running.manager.RegisterNode(_reg())
    data = json.dumps({"cpu": {"usage_percent": 12, "cores": 4.0}}).encode()
    reply = await running.daemon.ReportMetrics(_doc(data))
    assert reply.success
    samples = await running.app.store.query_metrics("n1", "cpu", 0, 2**62)
    assert [s.values for s in samples] == [{"usage_percent": 12.0, "cores": 4.0}]
