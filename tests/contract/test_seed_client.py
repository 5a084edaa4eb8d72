"""A client generated only from PROTOCOL.md's definitions talks to `opsfleet manager` run from the CLI."""

from __future__ import annotations

import importlib
import json
import time
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_tools import protoc

from tests.processes import Proc

SEED_DIR = Path(__file__).parent / "seed_proto"


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    out = tmp_path_factory.mktemp("seedgen")
    args = ["protoc", f"-I{SEED_DIR}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main([*args, "seed_manager.proto", "seed_daemon.proto"]) == 0
    sys.path.insert(0, str(out))
    try:
        return {
            name: importlib.import_module(name)
            for name in (
                "seed_manager_pb2",
                "seed_manager_pb2_grpc",
                "seed_daemon_pb2",
                "seed_daemon_pb2_grpc",
            )
        }
    finally:
        sys.path.remove(str(out))


@pytest.fixture
async def manager_proc(tmp_path: Path) -> AsyncIterator[tuple[Proc, int]]:
    proc = await Proc.start(["manager", "--grpc-listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")])
    port = await proc.grpc_port()
    yield proc, port
    await proc.stop()


async def test_seed_client_against_cli_manager(seed: dict[str, Any], manager_proc: tuple[Proc, int]) -> None:
    proc, port = manager_proc
    m, mg = seed["seed_manager_pb2"], seed["seed_manager_pb2_grpc"]
    d, dg = seed["seed_daemon_pb2"], seed["seed_daemon_pb2_grpc"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        manager = mg.ManagerServiceStub(channel)
        daemon = dg.DaemonServiceStub(channel)
        reply = await manager.RegisterNode(
            m.RegisterNodeRequest(
                node_id="seed-1", hostname="seedhost", ip="10.9.9.9", os="linux", arch="amd64"
            ),
            timeout=5,
        )
        assert reply.success
        assert (await manager.Heartbeat(m.HeartbeatRequest(node_id="seed-1", timestamp=1), timeout=5)).success
        metrics = [m.MetricData(type="cpu", timestamp=int(time.time()), values={"usage_percent": 5.0})]
        assert (
            await manager.ReportMetrics(m.ReportMetricsRequest(node_id="seed-1", metrics=metrics), timeout=5)
        ).success

        assigned = await daemon.Register(d.RegisterRequest(hostname="seedhost2", ip="10.9.9.8"), timeout=5)
        assert assigned.success and assigned.node_id
        hb = await daemon.Heartbeat(d.HeartbeatRequest(node_id=assigned.node_id, status="ok"), timeout=5)
        assert hb.success
        data = json.dumps({"memory": {"usage_percent": 33.0}}).encode()
        mr = await daemon.ReportMetrics(
            d.MetricsRequest(node_id=assigned.node_id, timestamp=5, data=data), timeout=5
        )
        assert mr.success
        cfg = await daemon.GetConfig(
            d.ConfigRequest(node_id=assigned.node_id, config_type="agent"), timeout=5
        )
        assert cfg.success
        states = [d.AgentState(agent_id="filebeat", status="running", pid=42, type="filebeat", version="8.1")]
        sync = await daemon.SyncAgentStates(
            d.SyncAgentStatesRequest(node_id=assigned.node_id, states=states), timeout=5
        )
        assert sync.success
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await manager.Heartbeat(m.HeartbeatRequest(node_id="never-registered"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    code = await proc.stop()
    assert code == 0
    assert "stopped" in proc.lines[-1], proc.output


async def test_config_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "manager.yaml"
    cfg.write_text("grpc:\n  port: 99999\nredis:\n  host: x\n")
    proc = await Proc.start(["manager", "--config", str(cfg)])
    assert await proc.wait() == 3
    assert "grpc.port" in proc.output
    assert "redis" in proc.output and "not used" in proc.output

    cfg.write_text("grpc:\n  prot: 9090\n")
    proc = await Proc.start(["manager", "--config", str(cfg)])
    assert await proc.wait() == 3
    assert "grpc.prot" in proc.output and "unknown key" in proc.output

    proc = await Proc.start(["manager", "--database-url", "mysql://x"])
    assert await proc.wait() == 3
    assert "database.url" in proc.output
