"""DaemonService served over a real Supervisor on 127.0.0.1:0, plaintext and with client certificates."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme

from opsfleet.common.errors import ConfigError
from opsfleet.common.log_lines import parse_line
from opsfleet.daemon.rpc.server import DaemonRpcServer, ServerTLS
from opsfleet.daemon.rpc.servicer import DaemonServicer
from opsfleet.daemon.supervisor import AgentSpec, Supervisor
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.integration.supervisor.conftest import texts

Program = Callable[..., AgentSpec]
Start = Callable[..., Awaitable[Supervisor]]
Eventually = Callable[..., Awaitable[Any]]


@pytest.fixture
async def served(
    supervisor: Start, program: Program, eventually: Eventually
) -> AsyncIterator[tuple[Supervisor, daemon_pb2_grpc.DaemonServiceAsyncStub]]:
    sup = await supervisor(
        program("web", "forever.py", version="2.1"),
        program("idle", "forever.py", enabled=False, type="telegraf"),
    )
    await eventually(lambda: sup.agent("web").status == "running" and texts(sup.tail_logs("web", 1, "line")))
    server = DaemonRpcServer(DaemonServicer(sup), host="127.0.0.1", port=0)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield sup, daemon_pb2_grpc.DaemonServiceStub(channel)
    await channel.close(None)
    await server.stop(1.0)


async def call_error(awaitable: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    return info.value


async def test_list_agents(served: tuple[Supervisor, daemon_pb2_grpc.DaemonServiceAsyncStub]) -> None:
    sup, stub = served
    reply = await stub.ListAgents(daemon_pb2.ListAgentsRequest(), timeout=5)
    assert [a.id for a in reply.agents] == ["idle", "web"]
    idle, web = reply.agents
    view = sup.agent("web")
    assert (web.type, web.version, web.status, web.pid) == ("custom", "2.1", "running", view.pid)
    assert web.start_time == view.start_time > 0
    assert (web.restart_count, web.last_heartbeat) == (0, 0)
    assert (idle.type, idle.status, idle.pid, idle.start_time) == ("telegraf", "stopped", 0, 0)


async def test_operate_agent(served: tuple[Supervisor, daemon_pb2_grpc.DaemonServiceAsyncStub]) -> None:
    sup, stub = served
    reply = await stub.OperateAgent(
        daemon_pb2.AgentOperationRequest(agent_id="idle", operation="start"), timeout=10
    )
    assert reply.success and reply.error_message == ""
    assert sup.agent("idle").status == "running"
    old_pid = sup.agent("web").pid
    await stub.OperateAgent(daemon_pb2.AgentOperationRequest(agent_id="web", operation="restart"), timeout=10)
    assert sup.agent("web").status == "running" and sup.agent("web").pid != old_pid
    await stub.OperateAgent(daemon_pb2.AgentOperationRequest(agent_id="idle", operation="stop"), timeout=10)
    assert sup.agent("idle").status == "stopped"

    bad_op = await call_error(
        stub.OperateAgent(daemon_pb2.AgentOperationRequest(agent_id="web", operation="explode"), timeout=5)
    )
    assert bad_op.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = await call_error(
        stub.OperateAgent(daemon_pb2.AgentOperationRequest(agent_id="nope", operation="stop"), timeout=5)
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    empty = await call_error(stub.OperateAgent(daemon_pb2.AgentOperationRequest(operation="stop"), timeout=5))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_operate_agent_uses_the_call_deadline(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    sup = await supervisor(program("slow", "forever.py", enabled=False, start_seconds=5))
    server = DaemonRpcServer(DaemonServicer(sup), host="127.0.0.1", port=0)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = daemon_pb2_grpc.DaemonServiceStub(channel)
        error = await call_error(
            stub.OperateAgent(
                daemon_pb2.AgentOperationRequest(agent_id="slow", operation="start"), timeout=0.5
            )
        )
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert sup.agent("slow").status == "starting"  # the start goes on
    await server.stop(1.0)


async def test_agent_metrics_and_logs(
    served: tuple[Supervisor, daemon_pb2_grpc.DaemonServiceAsyncStub], eventually: Eventually
) -> None:
    sup, stub = served
    await eventually(lambda: len(sup.resource_history("web", 3600)) >= 2)
    reply = await stub.GetAgentMetrics(daemon_pb2.AgentMetricsRequest(agent_id="web"), timeout=5)
    assert reply.agent_id == "web" and len(reply.data_points) >= 2
    point = reply.data_points[-1]
    assert point.timestamp > 0 and point.memory_rss > 0 and point.memory_vms >= point.memory_rss
    assert point.cpu >= 0 and point.open_files >= 0
    empty = await stub.GetAgentMetrics(daemon_pb2.AgentMetricsRequest(agent_id="idle", duration_seconds=60))
    assert list(empty.data_points) == []
    missing = await call_error(
        stub.GetAgentMetrics(daemon_pb2.AgentMetricsRequest(agent_id="nope"), timeout=5)
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    await eventually(lambda: len(texts(sup.tail_logs("web", 200))) >= 5)
    logs = await stub.GetAgentLogs(daemon_pb2.AgentLogsRequest(agent_id="web", lines=3), timeout=5)
    assert (
        logs.agent_id == "web"
        and len(logs.lines) == 3
        and all(line.startswith("line") for line in texts(logs.lines))
        and all(parse_line(line).stream == "stdout" for line in logs.lines)
    )
    one = await stub.GetAgentLogs(daemon_pb2.AgentLogsRequest(agent_id="web", lines=5, filter="line 000002"))
    assert texts(list(one.lines)) == ["line 000002 "]
    default = await stub.GetAgentLogs(daemon_pb2.AgentLogsRequest(agent_id="web"), timeout=5)
    assert 5 <= len(default.lines) <= 100
    missing = await call_error(stub.GetAgentLogs(daemon_pb2.AgentLogsRequest(agent_id="nope"), timeout=5))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_other_rpcs_are_unimplemented(
    served: tuple[Supervisor, daemon_pb2_grpc.DaemonServiceAsyncStub],
) -> None:
    _, stub = served
    update = await call_error(stub.PushUpdate(daemon_pb2.UpdateRequest(component="agent"), timeout=5))
    assert update.code() == grpc.StatusCode.UNIMPLEMENTED
    assert update.details() == "updates are not supported by this daemon"
    for call in (
        stub.Register(daemon_pb2.RegisterRequest(hostname="h"), timeout=5),
        stub.Heartbeat(daemon_pb2.HeartbeatRequest(node_id="n"), timeout=5),
        stub.ReportMetrics(daemon_pb2.MetricsRequest(node_id="n"), timeout=5),
        stub.GetConfig(daemon_pb2.ConfigRequest(node_id="n"), timeout=5),
        stub.SyncAgentStates(daemon_pb2.SyncAgentStatesRequest(node_id="n"), timeout=5),
    ):
        assert (await call_error(call)).code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("daemon-tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("manager.opsfleet")
    files = {
        name: directory / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    }
    ca.cert_pem.write_to_path(str(files["ca.pem"]))
    server.private_key_pem.write_to_path(str(files["server.key"]))
    server.cert_chain_pems[0].write_to_path(str(files["server.pem"]))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(files["server.pem"]), append=True)
    client.private_key_pem.write_to_path(str(files["client.key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client.pem"]))
    return files


async def test_mtls_refuses_clients_without_a_certificate(
    supervisor: Start, program: Program, pki: dict[str, Path]
) -> None:
    sup = await supervisor(program("web", "forever.py", enabled=False))
    # trustme certificates carry no opsfleet identity: the documented opt-out for a foreign CA.
    tls = ServerTLS(
        cert_file=str(pki["server.pem"]),
        key_file=str(pki["server.key"]),
        ca_file=str(pki["ca.pem"]),
        require_manager_identity=False,
    )
    server = DaemonRpcServer(DaemonServicer(sup), host="127.0.0.1", port=0, tls=tls)
    port = await server.start()
    ca = pki["ca.pem"].read_bytes()
    with_cert = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=pki["client.key"].read_bytes(),
        certificate_chain=pki["client.pem"].read_bytes(),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", with_cert) as channel:
        stub = daemon_pb2_grpc.DaemonServiceStub(channel)
        reply = await stub.ListAgents(daemon_pb2.ListAgentsRequest(), timeout=5)
        assert [a.id for a in reply.agents] == ["web"]
    without_cert = grpc.ssl_channel_credentials(root_certificates=ca)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", without_cert) as channel:
        stub = daemon_pb2_grpc.DaemonServiceStub(channel)
        error = await call_error(stub.ListAgents(daemon_pb2.ListAgentsRequest(), timeout=5))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    await server.stop(1.0)
    await server.stop(1.0)  # idempotent


async def test_server_errors_name_the_config_key(supervisor: Start, tmp_path: Path) -> None:
    sup = await supervisor()
    missing = ServerTLS(
        cert_file=str(tmp_path / "none.pem"),
        key_file=str(tmp_path / "none.key"),
        ca_file=str(tmp_path / "ca.pem"),
    )
    with pytest.raises(ConfigError, match=r"'daemon\.tls\.cert_file'"):
        await DaemonRpcServer(DaemonServicer(sup), host="127.0.0.1", port=0, tls=missing).start()
    first = DaemonRpcServer(DaemonServicer(sup), host="127.0.0.1", port=0)
    port = await first.start()
    with pytest.raises(ConfigError, match=r"'daemon\.grpc_port'"):
        await DaemonRpcServer(DaemonServicer(sup), host="127.0.0.1", port=port).start()
    await first.stop(0)
