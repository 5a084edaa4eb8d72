"""Central configuration end to end: Manager + CLI + real daemon processes running real agents."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import assert_eventually
from tests.integration.cli.support import Cli, InProcess
from tests.integration.policies.conftest import DaemonProc, agent
from tests.integration.web.support import Web


def write_policy(path: Path, agents: list[dict[str, Any]], selector: dict[str, str] | None = None) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "canary-logs",
                "selector": selector or {"env": "canary"},
                "priority": 10,
                "config": {"agents": agents},
            }
        )
    )
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def status_of(manager: Web, node_id: str) -> dict[str, Any]:
    data = manager.app.policies.status("canary-logs")
    rows = {row["node_id"]: row for row in data["nodes"]}
    assert node_id in rows, data
    return {**rows[node_id], "policy_hash": data["hash"], "policy_revision": data["revision"]}


async def test_canary_apply_change_delete(
    cli: Cli, run_main: InProcess, manager: Web, daemons: Callable[..., Any], tmp_path: Path
) -> None:
    port = manager.app.grpc_port
    canary: DaemonProc = await daemons("canary", {"env": "canary"}, port)
    prod: DaemonProc = await daemons("prod", {"env": "prod"}, port)
    await run_main.login()
    policy = write_policy(tmp_path / "policy.yaml", [agent("tail-a"), agent("tail-b")])

    applied = await cli.run("policies", "apply", "-f", str(policy))  # a real `opsfleet` process
    assert applied.code == 0, applied
    assert "revision 1" in applied.stdout
    # Two heartbeat intervals (1 s each) plus the agents' start_seconds.
    first = await assert_eventually(lambda: _both_running(canary), timeout=2 * 1.0 + 1.5, interval=0.1)
    await assert_eventually(lambda: _applied(manager, canary.node_id), timeout=5)
    shown = (await run_main("policies", "status", "canary-logs", "--json")).json()
    status = {row["node_id"]: row for row in shown["nodes"]}[canary.node_id]
    assert status["state"] == "applied" and status["revision"] == 1
    assert status["revision_hash"] == shown["hash"] and status["error"] == ""
    listed = await run_main("policies", "list")
    assert listed.code == 0 and "canary-logs" in listed.stdout and "env=canary" in listed.stdout
    detail = (await run_main("policies", "show", "canary-logs", "--json")).json()
    assert detail["policy"]["revision"] == 1 and len(detail["revisions"]) == 1
    table = await run_main("policies", "status", "canary-logs")
    assert "applied" in table.stdout and shown["hash"][:12] in table.stdout
    assert await prod.agents() == {}
    assert prod.node_id not in {row["node_id"] for row in shown["nodes"]}

    # Change tail-b's args only: tail-b restarts, tail-a keeps its process.
    write_policy(policy, [agent("tail-a"), agent("tail-b", "--count", "3")])
    changed = await run_main("policies", "apply", "-f", str(policy))
    assert changed.code == 0 and "revision 2" in changed.stdout and "--count" in changed.stdout

    async def b_restarted() -> dict[str, int] | None:
        running = await canary.running()
        return running if running.get("tail-b", first["tail-b"]) != first["tail-b"] else None

    second = await assert_eventually(b_restarted, timeout=6)
    assert second["tail-a"] == first["tail-a"]
    await assert_eventually(lambda: _applied(manager, canary.node_id, revision=2), timeout=5)

    deleted = await run_main("policies", "delete", "canary-logs")
    assert deleted.code == 0, deleted

    async def all_gone() -> bool:
        return await canary.agents() == {} and not alive(second["tail-a"]) and not alive(second["tail-b"])

    await assert_eventually(all_gone, timeout=8)
    assert manager.app.policies.current() == []
    diff = await run_main("policies", "diff", "canary-logs", "--from", "1", "--to", "2")
    assert diff.code == 0 and "+    - --count" in diff.stdout, diff


async def _both_running(daemon: DaemonProc) -> dict[str, int] | None:
    running = await daemon.running()
    return running if set(running) == {"tail-a", "tail-b"} else None


async def _applied(manager: Web, node_id: str, revision: int = 1) -> dict[str, Any] | None:
    status = await status_of(manager, node_id)
    return status if status["state"] == "applied" and status["revision"] == revision else None


async def test_failing_revision_rolls_back_and_last_known_good_survives_restart(
    cli: Cli, run_main: InProcess, manager: Web, daemons: Callable[..., Any], tmp_path: Path
) -> None:
    port = manager.app.grpc_port
    canary: DaemonProc = await daemons("canary", {"env": "canary"}, port)
    await run_main.login()
    policy = write_policy(tmp_path / "policy.yaml", [agent("tail-a")])
    assert (await run_main("policies", "apply", "-f", str(policy))).code == 0
    await assert_eventually(lambda: _applied(manager, canary.node_id), timeout=6)
    before = await canary.running()
    assert set(before) == {"tail-a"}

    write_policy(policy, [agent("tail-a"), agent("broken", binary=str(tmp_path / "no-such-binary"))])
    assert (await run_main("policies", "apply", "-f", str(policy))).code == 0

    async def failed() -> dict[str, Any] | None:
        status = await status_of(manager, canary.node_id)
        return status if status["state"] == "failed" else None

    status = await assert_eventually(failed, timeout=10)
    assert "broken" in status["error"], status
    # Back on revision 1: tail-a untouched, the broken agent gone.
    assert await canary.running() == before
    assert "broken" not in await canary.agents()
    node = (await run_main("policies", "status", "canary-logs", "--json")).json()
    assert node["counts"]["failed"] == 1 and node["nodes"][0]["revision"] == 2

    # Manager gone, daemon restarted: it runs its last-known-good agents (revision 1).
    await manager.close()
    await manager.app.stop()
    await canary.stop()
    assert not alive(before["tail-a"])
    again = await DaemonProc.start(canary.config, canary.work_dir, registered=False)
    try:
        await again.proc.wait_for_line("running the last-known-good central config")
        running = await assert_eventually(lambda: _one_running(again), timeout=6)
        assert set(running) == {"tail-a"}
    finally:
        await again.stop()


async def _one_running(daemon: DaemonProc) -> dict[str, int] | None:
    running = await daemon.running()
    return running or None


async def test_local_agents_stay_and_central_overrides_same_id(
    cli: Cli, run_main: InProcess, manager: Web, daemons: Callable[..., Any], tmp_path: Path
) -> None:
    port = manager.app.grpc_port
    config = tmp_path / "local.yaml"
    from tests.integration.policies.conftest import DAEMON_YAML

    local_agents = {"agents": [agent("local-only"), agent("shared", "--count", "1")]}
    config.write_text(DAEMON_YAML.format(labels={"env": "canary"}, port=port) + yaml.safe_dump(local_agents))
    daemon = await DaemonProc.start(config, tmp_path / "local")
    try:
        await run_main.login()
        initial = await assert_eventually(lambda: _count_running(daemon, 2), timeout=6)
        policy = write_policy(tmp_path / "policy.yaml", [agent("shared", "--count", "2")])
        assert (await run_main("policies", "apply", "-f", str(policy))).code == 0
        await assert_eventually(lambda: _applied(manager, daemon.node_id), timeout=6)
        after = await assert_eventually(lambda: _count_running(daemon, 2), timeout=6)
        assert after["local-only"] == initial["local-only"]
        assert after["shared"] != initial["shared"]
        view = await manager.app.configs.get(daemon.node_id, "daemon")
        assert b"--count" in view[0] and b"local-only" not in view[0]
    finally:
        await daemon.stop()


async def _count_running(daemon: DaemonProc, count: int) -> dict[str, int] | None:
    running = await daemon.running()
    return running if len(running) == count else None
