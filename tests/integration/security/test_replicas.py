"""Two Manager replicas on one database and one CA: identities enrolled through one are
honoured by the other, and a deletion through one is refused by the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.daemon.config import ManagerSection
from opsfleet.daemon.link import LinkSettings, ManagerLink
from opsfleet.daemon.outbox import Outbox
from opsfleet.daemon.spool import Spool
from tests.helpers import assert_eventually
from tests.integration.security.support import Fleet, Stubs, node_channel

# SQLite allows one Manager per database file (tests/integration/replicas/test_single_sqlite.py).
pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _replicas(database_url: str, start_fleet: Any) -> tuple[Fleet, Fleet]:
    """Two replicas sharing the fleet CA files (the first one creates them)."""
    a: Fleet = await start_fleet(database_url)
    ca_dir = a.app.config.data_dir + "/ca"
    b: Fleet = await start_fleet(
        database_url, enrollment__ca_cert_file=f"{ca_dir}/ca.pem", enrollment__ca_key_file=f"{ca_dir}/ca.key"
    )
    return a, b


async def test_replicas_share_identities_and_revocations(database_url: str, start_fleet: Any) -> None:
    a, b = await _replicas(database_url, start_fleet)
    assert a.fingerprint == b.fingerprint

    await a.enroll("roamer", await a.token())
    material = a.material("roamer")
    via_b = Stubs(node_channel(b.app, material))
    b.channels.append(via_b.channel)
    assert (await via_b.register("roamer")).success  # B looks the certificate up once
    assert (await via_b.heartbeat("roamer")).success

    r = await a.http.delete("/api/v1/admin/nodes/roamer", headers=await a.admin())
    assert r.status_code == 200, r.text

    async def refused() -> bool:
        try:
            await via_b.heartbeat("roamer")
        except grpc.aio.AioRpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    # Told at once (LISTEN/NOTIFY): B drops the node and looks its certificate up again.
    await assert_eventually(refused, timeout=2, interval=0.05)


async def test_enrolled_link_fails_over_with_the_pinned_manager_name(
    database_url: str, start_fleet: Any, tmp_path: Path
) -> None:
    a, b = await _replicas(database_url, start_fleet)
    await a.enroll("mover", await a.token())
    addresses = [f"127.0.0.1:{a.app.grpc_port}", f"127.0.0.1:{b.app.grpc_port}"]
    link = ManagerLink(
        manager=ManagerSection(address=addresses, reconnect_interval=0.2, timeout=3),
        node_id="mover",
        outbox=Outbox(Spool(tmp_path / "spool")),
        settings=LinkSettings(heartbeat_interval=0.2),
        material=a.material("mover"),
    )
    await link.start()
    try:
        await assert_eventually(lambda: link.heartbeats_sent > 0, timeout=10)
        current = a if link.address == addresses[0] else b
        other = b if current is a else a
        await current.app.stop()  # every address is 127.0.0.1: the name checked is MANAGER_DNS_NAME
        await assert_eventually(lambda: link.address != f"127.0.0.1:{current.app.grpc_port}", timeout=10)
        sent = link.heartbeats_sent
        await assert_eventually(lambda: link.heartbeats_sent > sent + 2, timeout=10)
        node = await other.app.nodes.get("mover")
        assert node.status.value == "online"
        assert link.failovers >= 1
    finally:
        await link.stop()
