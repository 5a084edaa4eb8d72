"""A real Daemon against a real Manager: registration, heartbeats, metrics, outages, the spool."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from opsfleet import __version__
from opsfleet.manager.app import ManagerApp
from tests.helpers import CONTRACT_METRIC_KEYS, assert_eventually
from tests.tcpproxy import TcpProxy


async def stored_count(manager: ManagerApp, node_id: str) -> int:
    return await manager.store.count_metrics(node_id)


async def test_registration_payload_heartbeats_and_metrics(apps: Any) -> None:
    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", daemon__labels={"role": "db", "zone": "a"})

    node = await assert_eventually(lambda: manager.store.get_node(daemon.node_id))
    assert node.hostname == socket.gethostname()
    assert node.ip == "127.0.0.1"  # the address actually used to reach a manager on loopback
    assert node.os == "linux" and node.arch
    assert node.labels == {"role": "db", "zone": "a"}
    assert node.daemon_version == __version__
    assert (Path(daemon.work_dir) / "node_id").read_text().strip() == daemon.node_id

    # Heartbeats at the configured interval (1 s): at least 3 within ~3.5 s, not a flood.
    start = daemon.link.heartbeats_sent
    await assert_eventually(lambda: daemon.link.heartbeats_sent >= start + 3, timeout=6)
    assert daemon.link.heartbeats_sent <= start + 6

    async def all_types_stored() -> bool:
        for type_ in CONTRACT_METRIC_KEYS:
            if not await manager.store.query_metrics(daemon.node_id, type_, 0, 2**40):
                return False
        return True

    await assert_eventually(all_types_stored, timeout=10)
    for type_, keys in CONTRACT_METRIC_KEYS.items():
        sample = (await manager.store.query_metrics(daemon.node_id, type_, 0, 2**40))[0]
        assert keys <= set(sample.values), (type_, keys - set(sample.values))


async def test_node_id_persists_across_restarts(apps: Any, tmp_path: Path) -> None:
    manager = await apps.manager()
    first = await apps.daemon(f"127.0.0.1:{manager.grpc_port}")
    node_id = first.node_id
    await apps.stop(first)
    second = await apps.daemon(f"127.0.0.1:{manager.grpc_port}")
    assert second.node_id == node_id
    assert len(await manager.store.list_nodes()) == 1


async def test_manager_restart_with_same_database_loses_nothing(apps: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'first.db'}"
    manager = await apps.manager(db)
    port = manager.grpc_port
    daemon = await apps.daemon(f"127.0.0.1:{port}")
    await assert_eventually(lambda: stored_count(manager, daemon.node_id), timeout=10)
    registrations = daemon.link.registrations

    await apps.stop(manager)
    taken_before = daemon.sampler.samples_taken
    await assert_eventually(lambda: daemon.sampler.samples_taken >= taken_before + 8, timeout=10)
    assert await daemon.outbox.pending() > 0

    manager = await apps.manager(db, port=port)

    async def drained() -> bool:
        return await daemon.outbox.pending() == 0 and daemon.link.connected

    await assert_eventually(drained, timeout=15)
    assert daemon.link.registrations == registrations  # known node: no re-registration (only on NOT_FOUND)
    await apps.stop(daemon)
    # Every sample ever taken, including the outage's, is stored exactly once.
    assert await stored_count(manager, daemon.node_id) == daemon.outbox.appended == daemon.outbox.delivered


async def test_manager_restart_with_empty_database_reregisters(apps: Any, tmp_path: Path) -> None:
    db1 = f"sqlite:///{tmp_path / 'first.db'}"
    manager = await apps.manager(db1)
    port = manager.grpc_port
    daemon = await apps.daemon(f"127.0.0.1:{port}")
    await assert_eventually(lambda: stored_count(manager, daemon.node_id), timeout=10)
    await assert_eventually(lambda: _pending_zero(daemon), timeout=10)
    delivered_before = daemon.outbox.delivered
    await apps.stop(manager)
    taken = daemon.sampler.samples_taken
    await assert_eventually(lambda: daemon.sampler.samples_taken >= taken + 8, timeout=10)

    fresh = await apps.manager(f"sqlite:///{tmp_path / 'empty.db'}", port=port)
    await assert_eventually(lambda: fresh.store.get_node(daemon.node_id), timeout=15)
    await assert_eventually(lambda: _pending_zero(daemon), timeout=15)
    await apps.stop(daemon)
    stored = await stored_count(fresh, daemon.node_id)
    assert stored == daemon.outbox.delivered - delivered_before
    assert stored >= 8


async def _pending_zero(daemon: Any) -> bool:
    return await daemon.outbox.pending() == 0


async def test_connection_cut_by_proxy_and_restored(apps: Any) -> None:
    manager = await apps.manager()
    proxy = TcpProxy("127.0.0.1", manager.grpc_port)
    await proxy.start()
    try:
        daemon = await apps.daemon(f"127.0.0.1:{proxy.port}")
        await assert_eventually(lambda: daemon.link.connected and daemon.link.heartbeats_sent > 0, timeout=10)
        await proxy.cut()
        await assert_eventually(lambda: not daemon.link.connected, timeout=10)
        taken = daemon.sampler.samples_taken
        await assert_eventually(lambda: daemon.sampler.samples_taken >= taken + 8, timeout=10)
        await proxy.restore()
        await assert_eventually(lambda: _pending_zero(daemon), timeout=20)
        await apps.stop(daemon)
        assert await stored_count(manager, daemon.node_id) == daemon.outbox.appended
        assert proxy.connections >= 2
    finally:
        await proxy.close()


async def test_daemon_starts_while_manager_is_down(apps: Any, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daemon = await apps.daemon(f"127.0.0.1:{port}")
    await assert_eventually(lambda: daemon.sampler.samples_taken >= 4, timeout=10)
    assert not daemon.link.connected and daemon.link.last_error
    manager = await apps.manager(port=port)
    await assert_eventually(lambda: _pending_zero(daemon), timeout=20)
    await apps.stop(daemon)
    assert await stored_count(manager, daemon.node_id) == daemon.outbox.appended


async def test_restarted_daemon_delivers_its_spool(apps: Any, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path / "node"
    first = await apps.daemon(f"127.0.0.1:{port}", work_dir=work)
    await assert_eventually(lambda: first.sampler.samples_taken >= 6, timeout=10)
    await apps.stop(first)
    spooled = first.outbox.appended
    assert spooled >= 6

    manager = await apps.manager(port=port)
    second = await apps.daemon(f"127.0.0.1:{port}", work_dir=work, collectors__cpu__enabled=False,
                               collectors__memory__enabled=False, collectors__disk__enabled=False,
                               collectors__network__enabled=False)  # fmt: skip
    await assert_eventually(lambda: _pending_zero(second), timeout=15)
    assert second.outbox.delivered == spooled
    assert await stored_count(manager, second.node_id) == spooled
