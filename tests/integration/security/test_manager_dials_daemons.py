"""The Manager dials each daemon as itself and reaches only the node it means to call.

Real daemons' DaemonService servers with enrolled identities on 127.0.0.1:0; the
Manager's DaemonClientPool with the Manager identity (``use_identity``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from opsfleet.common.errors import Unavailable
from opsfleet.common.pki import TLSMaterial, node_dns_name, save_node_material
from opsfleet.daemon.config import DaemonTLS
from opsfleet.daemon.rpc.server import DaemonRpcServer, server_tls
from opsfleet.daemon.rpc.servicer import DaemonServicer
from opsfleet.manager.rpc.daemon_client import DaemonCallSettings, DaemonClientPool
from tests.fleet_certs import FleetPKI
from tests.integration.security.test_daemon_server_auth import RecordingAgents

StartDaemon = Callable[[TLSMaterial | None], Awaitable[tuple[str, RecordingAgents]]]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start a DaemonService with an enrolled identity (None: plaintext); (address, agents)."""
    servers: list[DaemonRpcServer] = []

    async def start(identity: TLSMaterial | None) -> tuple[str, RecordingAgents]:
        work_dir = tmp_path / f"daemon-{len(servers)}"
        if identity is not None:
            save_node_material(work_dir, identity)
        agents = RecordingAgents()
        tls = server_tls(DaemonTLS(), work_dir)
        server = DaemonRpcServer(DaemonServicer(agents), host="127.0.0.1", port=0, tls=tls)
        servers.append(server)
        return f"127.0.0.1:{await server.start()}", agents

    yield start
    for server in servers:
        await server.stop(0)


@pytest.fixture
async def pool() -> AsyncIterator[DaemonClientPool]:
    pool = DaemonClientPool(DaemonCallSettings(list_timeout=5, operate_timeout=5))
    yield pool
    await pool.close()


async def test_the_manager_reaches_the_node_it_means(daemon: StartDaemon, pool: DaemonClientPool) -> None:
    fleet = FleetPKI()
    address_a, agents_a = await daemon(fleet.node("node-a"))
    address_b, agents_b = await daemon(fleet.node("node-b"))
    pool.use_identity(fleet.manager())
    await pool.start()
    assert await pool.client("node-a", address_a).operate("web", "stop") == (True, "")
    assert await pool.client("node-b", address_b).list_agents() == []
    assert agents_a.operations == [("web", "stop")]

    # node-a's record points at node-b's daemon (an address reused, or a spoofed record):
    with pytest.raises(Unavailable) as info:
        await pool.client("node-a", address_b).operate("web", "stop")
    assert info.value.message.startswith(f"daemon at {address_b} did not prove identity of node node-a: ")
    with pytest.raises(Unavailable, match="did not prove identity of node node-a"):
        await pool.client("node-a", address_b).list_agents()
    assert agents_b.operations == []
    with pytest.raises(Unavailable, match="node node-c is unreachable"):  # down is not an identity failure
        await pool.client("node-c", "127.0.0.1:1").list_agents()


@pytest.mark.parametrize("presented", ["foreign CA", "expired", "plaintext"])
async def test_a_daemon_that_cannot_prove_its_identity_is_not_called(
    daemon: StartDaemon, pool: DaemonClientPool, presented: str
) -> None:
    fleet = FleetPKI()
    identity = {
        "foreign CA": FleetPKI().node("node-a"),
        "expired": fleet.forged(
            uri="spiffe://opsfleet/node/node-a", dns=node_dns_name("node-a"), expired=True
        ),
        "plaintext": None,
    }[presented]
    address, agents = await daemon(identity)
    pool.use_identity(fleet.manager())
    await pool.start()
    with pytest.raises(Unavailable) as info:
        await pool.client("node-a", address).operate("web", "stop")
    assert f"daemon at {address} did not prove identity of node node-a" in info.value.message, (
        info.value.message
    )
    assert agents.operations == []
