"""The Manager operating agents on a real Daemon: DaemonClient pool, state sync, history, TLS."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.errors import InvalidArgument, NotFound, Unavailable
from opsfleet.common.log_lines import parse_line
from opsfleet.manager.app import ManagerApp
from opsfleet.manager.services.timeline import make_event_filter
from tests.helpers import assert_eventually

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"


def agent(agent_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "type": "custom",
        "version": "1.2.3",
        "binary_path": sys.executable,
        "args": [str(PROGRAMS / "forever.py"), "--interval", "0.2"],
        "start_seconds": 0.3,
        "stop_timeout": 3,
        "metrics_interval": 0.3,
        **extra,
    }


async def stored(manager: ManagerApp, node_id: str) -> dict[str, Any]:
    return {a.agent_id: a for a in await manager.store.list_agents(node_id)}


async def test_operate_agents_through_the_manager(apps: Any) -> None:
    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", agents=[agent("alpha"), agent("beta")])
    node_id = daemon.node_id

    async def both_running() -> bool:
        agents = await stored(manager, node_id)
        return {a: agents[a].status for a in agents} == {"alpha": "running", "beta": "running"}

    await assert_eventually(both_running, timeout=15)
    node = await manager.nodes.get(node_id)
    assert node.daemon_address == f"127.0.0.1:{daemon.grpc_port}"

    live = await manager.agent_ops.sync_live(node_id)
    assert [a.agent_id for a in live] == ["alpha", "beta"]
    assert all(a.pid > 0 and a.version == "1.2.3" and a.start_time > 0 for a in live)
    old_pid = live[0].pid

    # stop: the manager's table follows within seconds, and the agent stays stopped
    record = await manager.agent_ops.operate(node_id, "alpha", "stop", username="alice")
    assert record.success and record.username == "alice" and record.id > 0
    await assert_eventually(lambda: _status_is(manager, node_id, "alpha", "stopped"), timeout=10)
    assert daemon.supervisor.agent("alpha").pid == 0

    await manager.agent_ops.operate(node_id, "alpha", "start", username="alice")
    await assert_eventually(lambda: _status_is(manager, node_id, "alpha", "running"), timeout=10)
    record = await manager.agent_ops.operate(node_id, "alpha", "restart", username="bob")
    assert record.success
    new_pid = daemon.supervisor.agent("alpha").pid
    assert new_pid not in (0, old_pid)

    history = await manager.agent_ops.operations(node_id)
    assert [(r.operation, r.username, r.success) for r in history] == [
        ("restart", "bob", True),
        ("start", "alice", True),
        ("stop", "alice", True),
    ]

    points = await assert_eventually(
        lambda: manager.agent_ops.agent_metrics(node_id, "beta", 3600), timeout=10
    )
    assert points[-1].memory_rss > 0 and points[-1].timestamp > 0
    lines = await assert_eventually(lambda: manager.agent_ops.agent_logs(node_id, "beta", 5), timeout=10)
    assert 0 < len(lines) <= 5 and all(parse_line(line).text.startswith("line ") for line in lines)
    assert all(parse_line(line).stream == "stdout" and parse_line(line).time for line in lines)

    with pytest.raises(NotFound):
        await manager.agent_ops.operate(node_id, "ghost", "start", username="alice")
    with pytest.raises(InvalidArgument):
        await manager.agent_ops.operate(node_id, "alpha", "explode", username="alice")
    with pytest.raises(NotFound):
        await manager.agent_ops.agent_metrics(node_id, "ghost", 60)
    failed = (await manager.agent_ops.operations(node_id))[0]
    assert failed.agent_id == "ghost" and not failed.success and failed.error


async def test_timeline_of_a_real_daemon_names_reasons_and_operators(apps: Any) -> None:
    manager = await apps.manager()
    crashing = agent(
        "crashy",
        args=[str(PROGRAMS / "crash.py"), "--after", "1.5"],
        restart={"max_retries": 1, "backoff_base": 0.1},
    )
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", agents=[agent("alpha"), crashing])
    node_id = daemon.node_id

    async def kinds(kind: str) -> list[str]:
        page = await manager.timeline.page(make_event_filter(node_id, [kind], 0), 1, 100)
        return [event.detail for event, _host in page.items]

    async def crash_recorded() -> bool:
        details = await kinds("agent-state")
        assert any("exit code 3" in d and "-> error" in d for d in details), details
        return True

    await assert_eventually(crash_recorded, timeout=20)
    await assert_eventually(lambda: _status_is(manager, node_id, "alpha", "running"), timeout=10)
    await manager.agent_ops.operate(node_id, "alpha", "restart", username="carol")

    async def restart_attributed() -> bool:
        details = await kinds("agent-state")
        assert any("alpha" in d and "by operator carol" in d for d in details), details
        return True

    await assert_eventually(restart_attributed, timeout=10)
    assert await kinds("operation") == ["restart of agent alpha by operator carol: ok"]
    stored_crashy = (await stored(manager, node_id))["crashy"]
    assert stored_crashy.status == "error" and stored_crashy.restart_count == 1


async def _status_is(manager: ManagerApp, node_id: str, agent_id: str, status: str) -> bool:
    agents = await stored(manager, node_id)
    return agent_id in agents and agents[agent_id].status == status


async def test_agents_removed_from_config_are_marked_removed(apps: Any, tmp_path: Path) -> None:
    from opsfleet.daemon.config import load_daemon_config

    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", agents=[agent("keep"), agent("drop")])
    await assert_eventually(lambda: _status_is(manager, daemon.node_id, "drop", "running"), timeout=15)
    new_config = load_daemon_config(None, {}, {**_flat(daemon.config), "agents": [agent("keep")]})
    daemon._reload_config = lambda: new_config
    await daemon.reload()
    await assert_eventually(lambda: _status_is(manager, daemon.node_id, "drop", "removed"), timeout=10)
    assert await _status_is(manager, daemon.node_id, "keep", "running")


def _flat(config: Any) -> dict[str, Any]:
    return {
        "manager.address": config.manager.address,
        "daemon.work_dir": config.daemon.work_dir,
        "daemon.grpc_host": "127.0.0.1",
        "daemon.grpc_port": 0,
        "manager.heartbeat_interval": 1.0,
    }


async def test_unreachable_daemon_is_unavailable(apps: Any) -> None:
    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}", agents=[agent("a")])
    await assert_eventually(lambda: _status_is(manager, daemon.node_id, "a", "running"), timeout=15)
    await apps.stop(daemon)
    with pytest.raises(Unavailable):
        await manager.agent_ops.operate(daemon.node_id, "a", "restart", username="x")
    with pytest.raises(Unavailable):
        await manager.agent_ops.sync_live(daemon.node_id)


async def test_daemon_tls_requires_the_managers_client_certificate(
    apps: Any, tls_files: dict[str, str], tmp_path: Path
) -> None:
    daemon_tls = {
        "daemon__tls__cert_file": tls_files["server_cert"],
        "daemon__tls__key_file": tls_files["server_key"],
        "daemon__tls__ca_file": tls_files["ca"],
        # trustme certificates carry no opsfleet identity: the documented opt-out for a foreign CA.
        "daemon__tls__require_manager_identity": False,
    }
    # A manager without a client certificate is refused ...
    anonymous = await apps.manager(
        f"sqlite:///{tmp_path / 'a.db'}", **{"agents.tls.ca_file": tls_files["ca"]}
    )
    daemon = await apps.daemon(
        f"127.0.0.1:{anonymous.grpc_port}", work_dir=tmp_path / "d1", agents=[agent("a")], **daemon_tls
    )
    await assert_eventually(lambda: anonymous.store.get_node(daemon.node_id), timeout=10)
    with pytest.raises(Unavailable):
        await anonymous.agent_ops.sync_live(daemon.node_id)
    await apps.stop(daemon)

    # ... one with a certificate of the daemon's CA is served.
    trusted = await apps.manager(
        f"sqlite:///{tmp_path / 'b.db'}",
        **{
            "agents.tls.ca_file": tls_files["ca"],
            "agents.tls.cert_file": tls_files["client_cert"],
            "agents.tls.key_file": tls_files["client_key"],
        },
    )
    daemon = await apps.daemon(
        f"127.0.0.1:{trusted.grpc_port}", work_dir=tmp_path / "d2", agents=[agent("a")], **daemon_tls
    )
    await assert_eventually(lambda: trusted.store.get_node(daemon.node_id), timeout=10)
    live = await assert_eventually(lambda: trusted.agent_ops.sync_live(daemon.node_id), timeout=10)
    assert [a.agent_id for a in live] == ["a"]
