"""agents list / start / stop / restart / logs / history / metrics against a fake DaemonService."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.cli.conftest import CliFakeDaemon
from tests.integration.cli.support import Cli, InProcess
from tests.integration.web.support import Web


async def test_list_stored_and_live(cli: Cli, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]) -> None:
    _, address = fake_daemon
    await manager.register("n1", daemon_address=address)
    await cli.login()
    stored = await cli.run("agents", "list", "n1")
    assert stored.code == 0 and "no agents stored; try --live" in stored.stdout
    live = await cli.run("agents", "list", "n1", "--live")
    assert live.code == 0, live
    assert "a1" in live.stdout and "4242" in live.stdout and "running" in live.stdout
    assert "broken" in live.stdout and "crashed" in live.stdout
    data = (await cli.run("agents", "list", "n1", "--json")).json()
    assert data["count"] == 3
    assert {a["agent_id"]: a["status"] for a in data["agents"]}["a1"] == "running"
    ghost = await cli.run("agents", "list", "ghost")
    assert ghost.code == 6 and "no node has the id, id prefix or hostname 'ghost'" in ghost.stderr


async def test_start_stop_restart_and_history(
    cli: Cli, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]
) -> None:
    daemon, address = fake_daemon
    await manager.register("n1", daemon_address=address)
    await cli.login()
    for op in ("start", "stop", "restart"):
        result = await cli.run("agents", op, "n1", "a1")
        assert result.code == 0, result
        assert result.stdout.startswith(f"{op} agent a1 on node n1: ok"), result
    assert daemon.operations == [("a1", "start"), ("a1", "stop"), ("a1", "restart")]

    record = (await cli.run("agents", "restart", "n1", "a1", "--json")).json()
    assert record["operation"] == "restart" and record["success"] is True and record["username"] == "admin"

    failed = await cli.run("agents", "start", "n1", "broken")
    assert failed.code == 1
    assert "start of agent broken on node n1 failed: binary missing" in failed.stderr
    unknown = await cli.run("agents", "stop", "n1", "nope")
    assert unknown.code == 6 and "(404, code 1004)" in unknown.stderr

    history = await cli.run("agents", "history", "n1")
    assert history.code == 0
    rows = [line.split() for line in history.stdout.splitlines()[2:]]
    assert [(r[3], r[4]) for r in rows[:3]] == [("nope", "stop"), ("broken", "start"), ("a1", "restart")]
    assert "failed" in history.stdout and "binary missing" in history.stdout
    only = (await cli.run("agents", "history", "n1", "--agent", "a1", "--limit", "2", "--json")).json()
    assert only["count"] == 2 and {o["agent_id"] for o in only["operations"]} == {"a1"}


async def test_viewer_cannot_restart(
    cli: Cli, manager: Web, fake_daemon: tuple[CliFakeDaemon, str], tmp_path: Path
) -> None:
    daemon, address = fake_daemon
    await manager.register("n1", daemon_address=address)
    await manager.create_user("vera", "viewer", password="password-123")
    viewer = tmp_path / "viewer.json"
    await cli.login("vera", "password-123", "--profile-file", str(viewer))
    assert json.loads(viewer.read_text())["username"] == "vera"
    result = await cli.run("agents", "restart", "n1", "a1", "--profile-file", str(viewer))
    assert result.code == 5
    assert result.stderr.strip() == (
        "opsfleet agents restart: this needs the operator role; you are viewer (403, code 1003)"
    )
    assert daemon.operations == []
    # reading is fine for a viewer
    assert (await cli.run("agents", "list", "n1", "--profile-file", str(viewer))).code == 0


async def test_logs_and_agent_metrics(
    run_main: InProcess, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]
) -> None:
    _, address = fake_daemon
    await manager.register("n1", daemon_address=address)
    await run_main.login()
    logs = await run_main("agents", "logs", "n1", "a1", "--lines", "3", "--filter", "error")
    assert logs.code == 0, logs
    assert logs.stdout.splitlines() == ["line 280 error", "line 290 error", "line 300 error"]
    data = (await run_main("agents", "logs", "n1", "a1", "-n", "5", "--json")).json()
    assert data["count"] == 5 and data["lines"][-1] == "line 300 error"
    empty = await run_main("agents", "logs", "n1", "a1", "--filter", "no-such-text")
    assert empty.code == 0 and empty.stdout == "" and "no log lines" in empty.stderr
    too_many = await run_main("agents", "logs", "n1", "a1", "--lines", "5000")
    assert too_many.code == 2

    metrics = await run_main("agents", "metrics", "n1", "a1", "--since", "5m")
    assert metrics.code == 0 and "Resources of agent a1" in metrics.stdout
    points = (await run_main("agents", "metrics", "n1", "a1", "--since", "2m", "--json")).json()
    assert points["count"] == 2 and points["data_points"][1]["cpu"] == 1.5


async def test_daemon_timeouts_and_client_timeouts_exit_1(
    run_main: InProcess, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]
) -> None:
    _, address = fake_daemon
    await manager.register("n1", daemon_address=address)
    await manager.register("nowhere")
    await run_main.login()
    slow = await run_main("agents", "stop", "n1", "slow")  # the manager gives up after 0.5 s
    assert slow.code == 1 and "(504, code 5004)" in slow.stderr
    impatient = await run_main("agents", "stop", "n1", "slow", "--timeout", "0.1")
    assert impatient.code == 1
    assert f"{run_main.cli.server} did not answer POST /api/v1/nodes/n1/agents/slow/operate within 0.1s" in (
        impatient.stderr
    )
    unreachable = await run_main("agents", "list", "nowhere", "--live")
    assert unreachable.code == 1 and "(502, code 5004)" in unreachable.stderr
