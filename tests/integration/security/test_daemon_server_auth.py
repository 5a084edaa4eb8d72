"""The DaemonService serves the Manager only: real TLS over real sockets on 127.0.0.1:0.

The daemon serves with its enrolled node certificate (``work_dir/tls``); a client must
present a certificate from the fleet CA carrying the Manager identity.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from opsfleet.common.errors import ConfigError, NotFound
from opsfleet.common.pki import TLSMaterial, node_dns_name, save_node_material
from opsfleet.daemon.config import DaemonTLS, load_daemon_config
from opsfleet.daemon.rpc.server import DaemonRpcServer, ServerTLS, server_tls
from opsfleet.daemon.rpc.servicer import DaemonServicer
from opsfleet.daemon.supervisor.resources import ResourcePoint
from opsfleet.daemon.supervisor.states import AgentView
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.fleet_certs import FleetPKI, served_serial, write_files
from tests.helpers import assert_eventually

NODE = "node-1"
STOP = daemon_pb2.AgentOperationRequest(agent_id="web", operation="stop")


@dataclass
class RecordingAgents:
    """An AgentControl that records the operations it was asked for; ``gate`` holds them."""

    operations: list[tuple[str, str]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    def agents(self) -> list[AgentView]:
        return []

    async def operate(self, agent_id: str, operation: str, timeout: float) -> None:
        if agent_id != "web":
            raise NotFound(f"agent {agent_id!r} not found")
        if self.gate is not None:
            await self.gate.wait()
        self.operations.append((agent_id, operation))

    def resource_history(self, agent_id: str, duration_seconds: float) -> list[ResourcePoint]:
        return []

    def tail_logs(self, agent_id: str, lines: int, filter: str = "") -> list[str]:
        return ["secret log line"]


@dataclass
class Served:
    fleet: FleetPKI
    agents: RecordingAgents
    server: DaemonRpcServer
    port: int
    work_dir: Path


@pytest.fixture
async def enrolled(tmp_path: Path) -> AsyncIterator[Served]:
    """A DaemonService of node-1 with an enrolled identity, chosen as the daemon app chooses it."""
    fleet = FleetPKI()
    work_dir = tmp_path / "daemon"
    save_node_material(work_dir, fleet.node(NODE))
    agents = RecordingAgents()
    tls = server_tls(DaemonTLS(), work_dir)
    server = DaemonRpcServer(DaemonServicer(agents), host="127.0.0.1", port=0, tls=tls)
    port = await server.start()
    yield Served(fleet, agents, server, port, work_dir)
    await server.stop(0)


def tls_channel(
    port: int, client: TLSMaterial | None, ca_pem: bytes, node_id: str = NODE
) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    options = [("grpc.ssl_target_name_override", node_dns_name(node_id))]
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=options)


async def stop_code(channel: grpc.aio.Channel) -> tuple[grpc.StatusCode, str]:
    async with channel:
        stub = daemon_pb2_grpc.DaemonServiceStub(channel)
        try:
            await stub.OperateAgent(STOP, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""


async def test_the_manager_identity_is_served_and_audited(
    enrolled: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="opsfleet.daemon.rpc.audit")
    async with tls_channel(enrolled.port, enrolled.fleet.manager(), enrolled.fleet.ca_pem) as channel:
        stub = daemon_pb2_grpc.DaemonServiceStub(channel)
        assert (await stub.OperateAgent(STOP, timeout=5)).success
        logs = await stub.GetAgentLogs(daemon_pb2.AgentLogsRequest(agent_id="web"), timeout=5)
        assert list(logs.lines) == ["secret log line"]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.OperateAgent(daemon_pb2.AgentOperationRequest(agent_id="nope", operation="start"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as update:
            await stub.PushUpdate(daemon_pb2.UpdateRequest(component="agent", version="2"), timeout=5)
        assert update.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert enrolled.agents.operations == [("web", "stop")]
    audit = [r.getMessage() for r in caplog.records if r.name == "opsfleet.daemon.rpc.audit"]
    assert len(audit) == 4, audit
    for line in audit:
        assert "caller=spiffe://opsfleet/manager at ipv4:127.0.0.1:" in line
    assert "operation=OperateAgent/stop agent='web' result=ok" in audit[0]
    assert "operation=GetAgentLogs agent='web' result=ok" in audit[1]
    assert (
        "operation=OperateAgent/start agent='nope' result=failed (NotFound: agent 'nope' not found)"
        in audit[2]
    )
    assert "operation=PushUpdate agent='agent@2' result=refused (unimplemented)" in audit[3]


async def test_clients_without_the_manager_identity_are_refused(
    enrolled: Served, caplog: pytest.LogCaptureFixture
) -> None:
    fleet, port = enrolled.fleet, enrolled.port
    handshake_refused = {
        "plaintext": grpc.aio.insecure_channel(f"127.0.0.1:{port}"),
        "TLS without a certificate": tls_channel(port, None, fleet.ca_pem),
        "self-signed Manager certificate": tls_channel(port, fleet.forged(self_signed=True), fleet.ca_pem),
        "expired Manager certificate from the fleet CA": tls_channel(
            port, fleet.forged(expired=True), fleet.ca_pem
        ),
    }
    for label, channel in handshake_refused.items():
        code, _ = await stop_code(channel)
        assert code == grpc.StatusCode.UNAVAILABLE, label

    caplog.set_level(logging.WARNING, logger="opsfleet.daemon.rpc.auth")
    code, details = await stop_code(tls_channel(port, fleet.node("node-2"), fleet.ca_pem))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == (
        "certificate identity spiffe://opsfleet/node/node-2 may not call the DaemonService: "
        "only spiffe://opsfleet/manager may"
    )
    # The node's own certificate is no better than another node's.
    code, _ = await stop_code(tls_channel(port, fleet.node(NODE), fleet.ca_pem))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, details = await stop_code(tls_channel(port, fleet.forged(uri=None), fleet.ca_pem))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "carries no opsfleet identity" in details

    assert enrolled.agents.operations == []
    refusals = [r.getMessage() for r in caplog.records if r.name == "opsfleet.daemon.rpc.auth"]
    assert len(refusals) == 3 and "refused OperateAgent from spiffe://opsfleet/node/node-2" in refusals[0]


async def test_every_method_is_guarded(enrolled: Served) -> None:
    async with tls_channel(enrolled.port, enrolled.fleet.node("node-2"), enrolled.fleet.ca_pem) as channel:
        stub = daemon_pb2_grpc.DaemonServiceStub(channel)
        for call in (
            stub.ListAgents(daemon_pb2.ListAgentsRequest(), timeout=5),
            stub.GetAgentLogs(daemon_pb2.AgentLogsRequest(agent_id="web"), timeout=5),
            stub.GetAgentMetrics(daemon_pb2.AgentMetricsRequest(agent_id="web"), timeout=5),
            stub.PushUpdate(daemon_pb2.UpdateRequest(component="agent"), timeout=5),
            stub.Register(daemon_pb2.RegisterRequest(hostname="h"), timeout=5),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_renewed_certificate_is_served_without_a_restart(enrolled: Served, tmp_path: Path) -> None:
    fleet, port = enrolled.fleet, enrolled.port
    manager = fleet.manager()
    old_serial = served_serial(port, manager, tmp_path / "probe")
    gate = enrolled.agents.gate = asyncio.Event()
    async with tls_channel(port, manager, fleet.ca_pem) as before:
        stub = daemon_pb2_grpc.DaemonServiceStub(before)
        in_flight = asyncio.ensure_future(stub.OperateAgent(STOP, timeout=10))
        await assert_eventually(lambda: before.get_state() == grpc.ChannelConnectivity.READY)

        renewed = fleet.node(NODE)
        save_node_material(enrolled.work_dir, renewed)  # as renewal does: each file replaced atomically
        new_serial = served_serial(port, manager, tmp_path / "probe")
        assert new_serial != old_serial
        assert enrolled.server.certificates is not None and enrolled.server.certificates.reloads == 1

        async with tls_channel(port, manager, fleet.ca_pem) as after:
            reply = await daemon_pb2_grpc.DaemonServiceStub(after).ListAgents(
                daemon_pb2.ListAgentsRequest(), timeout=5
            )
            assert list(reply.agents) == []
        gate.set()
        assert (await in_flight).success  # the call in flight over the old session finished
        assert (await stub.OperateAgent(STOP, timeout=5)).success  # and the old channel goes on
    assert enrolled.agents.operations == [("web", "stop"), ("web", "stop")]


async def test_a_half_written_renewal_keeps_the_old_certificate(enrolled: Served, tmp_path: Path) -> None:
    fleet, port = enrolled.fleet, enrolled.port
    manager = fleet.manager()
    old_serial = served_serial(port, manager, tmp_path / "probe")
    renewed = fleet.node(NODE)
    tls_dir = enrolled.work_dir / "tls"
    (tls_dir / "node.key").write_bytes(renewed.key_pem)  # the key is replaced first ...
    assert served_serial(port, manager, tmp_path / "probe") == old_serial  # not a mismatched pair
    code, _ = await stop_code(tls_channel(port, manager, fleet.ca_pem))
    assert code == grpc.StatusCode.OK
    (tls_dir / "node.pem").write_bytes(renewed.cert_pem)  # ... then the certificate
    assert served_serial(port, manager, tmp_path / "probe") != old_serial
    code, _ = await stop_code(tls_channel(port, manager, fleet.ca_pem))
    assert code == grpc.StatusCode.OK


def test_daemon_tls_without_a_ca_is_a_config_error(tmp_path: Path) -> None:
    files = write_files(FleetPKI().node(NODE), tmp_path / "tls")
    with pytest.raises(ConfigError, match=r"config key 'daemon\.tls\.ca_file'"):
        load_daemon_config(
            None, {}, {"daemon.tls.cert_file": files["cert"], "daemon.tls.key_file": files["key"]}
        )
    config = load_daemon_config(
        None,
        {"OPSFLEET_DAEMON__TLS__REQUIRE_MANAGER_IDENTITY": "false"},
        {
            "daemon.tls.cert_file": files["cert"],
            "daemon.tls.key_file": files["key"],
            "daemon.tls.ca_file": files["ca"],
        },
    )
    assert config.daemon.tls.require_manager_identity is False


async def test_a_server_without_a_ca_does_not_start(tmp_path: Path) -> None:
    files = write_files(FleetPKI().node(NODE), tmp_path / "tls")
    server = DaemonRpcServer(
        DaemonServicer(RecordingAgents()),
        host="127.0.0.1",
        port=0,
        tls=ServerTLS(files["cert"], files["key"]),
    )
    with pytest.raises(ConfigError, match=r"config key 'daemon\.tls\.ca_file'"):
        await server.start()
    await server.stop(0)


@pytest.mark.parametrize("require_manager", [True, False])
async def test_explicit_files_require_the_manager_identity_unless_opted_out(
    tmp_path: Path, require_manager: bool
) -> None:
    fleet = FleetPKI()
    files = write_files(fleet.node(NODE), tmp_path / "tls")
    settings = DaemonTLS(
        cert_file=files["cert"],
        key_file=files["key"],
        ca_file=files["ca"],
        require_manager_identity=require_manager,
    )
    tls = server_tls(settings, tmp_path / "not-enrolled")
    assert tls is not None and tls.source == "daemon.tls"
    agents = RecordingAgents()
    server = DaemonRpcServer(DaemonServicer(agents), host="127.0.0.1", port=0, tls=tls)
    port = await server.start()
    try:
        assert (await stop_code(tls_channel(port, fleet.manager(), fleet.ca_pem)))[0] == grpc.StatusCode.OK
        assert (await stop_code(tls_channel(port, None, fleet.ca_pem)))[0] == grpc.StatusCode.UNAVAILABLE
        other_node, _ = await stop_code(tls_channel(port, fleet.node("node-2"), fleet.ca_pem))
        expected = grpc.StatusCode.PERMISSION_DENIED if require_manager else grpc.StatusCode.OK
        assert other_node == expected
    finally:
        await server.stop(0)
    assert len(agents.operations) == (1 if require_manager else 2)


def test_the_enrolled_identity_wins_over_the_tls_files(tmp_path: Path) -> None:
    fleet = FleetPKI()
    files = write_files(fleet.node("files"), tmp_path / "files")
    settings = DaemonTLS(
        cert_file=files["cert"], key_file=files["key"], ca_file=files["ca"], require_manager_identity=False
    )
    assert server_tls(DaemonTLS(), tmp_path / "daemon") is None  # plaintext, as the seed
    save_node_material(tmp_path / "daemon", fleet.node(NODE))
    tls = server_tls(settings, tmp_path / "daemon")
    assert tls == ServerTLS(
        str(tmp_path / "daemon" / "tls" / "node.pem"),
        str(tmp_path / "daemon" / "tls" / "node.key"),
        str(tmp_path / "daemon" / "tls" / "ca.pem"),
        require_manager_identity=True,
        source="enrolled identity",
    )
