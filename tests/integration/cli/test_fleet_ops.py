"""Operator workflows across the CLI and REST: node references, the new PID after an operation,
log lines with time and stream (and --follow), network rates, fleet-wide agents with bulk
operations by selector, and the node timeline."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.integration.cli.conftest import CliFakeDaemon
from tests.integration.cli.support import Cli
from tests.integration.web.support import Web, expect


async def _sync(manager: Web, node_id: str, *states: daemon_pb2.AgentState) -> None:
    stub = daemon_pb2_grpc.DaemonServiceStub(manager.channel)
    answer = await stub.SyncAgentStates(daemon_pb2.SyncAgentStatesRequest(node_id=node_id, states=states))
    assert answer.success


def _state(agent_id: str, status: str, pid: int, **kw: Any) -> daemon_pb2.AgentState:
    return daemon_pb2.AgentState(
        agent_id=agent_id, status=status, pid=pid, type="exporter", version="1", **kw
    )


async def test_node_refs_resolve_by_id_prefix_and_hostname(
    cli: Cli, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]
) -> None:
    _, address = fake_daemon
    for node_id, host in (("aaaa1111-x", "web-1"), ("aaaa2222-y", "web-1"), ("bbbb3333", "db-1")):
        await manager.register(node_id, hostname=host, daemon_address=address)
    await manager.register("n1", hostname="exact")
    await manager.register("n1x", hostname="longer")
    await cli.login()

    async def shown(ref: str) -> str:
        result = await cli.run("nodes", "show", ref, "--json")
        assert result.code == 0, result
        return str(result.json()["node"]["node_id"])

    assert await shown("aaaa1") == "aaaa1111-x"
    assert await shown("db-1") == "bbbb3333"
    assert await shown("n1") == "n1"  # an exact id wins over the longer ids it prefixes
    for ref in ("aaaa", "web-1"):
        ambiguous = await cli.run("nodes", "show", ref)
        assert ambiguous.code == 2, ambiguous
        assert "web-1 (aaaa1111)" in ambiguous.stderr and "web-1 (aaaa2222)" in ambiguous.stderr
    unknown = await cli.run("agents", "list", "zzz")
    assert unknown.code == 6 and "no node has the id, id prefix or hostname 'zzz'" in unknown.stderr

    restarted = await cli.run("agents", "restart", "db-1", "a1")
    assert restarted.code == 0, restarted
    assert restarted.stdout.strip() == "restart agent a1 on node bbbb3333: ok (now running, pid 4242)"


async def test_logs_show_time_and_stream_and_follow(
    cli: Cli, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]
) -> None:
    daemon, address = fake_daemon
    daemon.logs = [
        "2026-01-31T12:00:00.125Z stdout started",
        "2026-01-31T12:00:01.000Z stderr boom",
        "a line from before stamps",
    ]
    await manager.register("n1", daemon_address=address)
    await cli.login()
    shown = await cli.run("agents", "logs", "n1", "a1")
    assert shown.code == 0, shown
    assert shown.stdout.splitlines() == [
        "2026-01-31 12:00:00.125 stdout started",
        "2026-01-31 12:00:01.000 stderr boom",
        "a line from before stamps",
    ]
    rest = (await manager.get("/api/v1/nodes/n1/agents/a1/logs")).json()["data"]
    assert rest["entries"][1] == {"time": "2026-01-31T12:00:01.000Z", "stream": "stderr", "text": "boom"}
    assert rest["lines"][1] == "2026-01-31T12:00:01.000Z stderr boom"  # the wire form stays

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opsfleet",
        "agents",
        "logs",
        "n1",
        "a1",
        "-n",
        "1",
        "--follow",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli.env(),
    )
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert first.decode().strip() == "a line from before stamps"
        daemon.logs += ["2026-01-31T12:00:02.000Z stdout next", "2026-01-31T12:00:03.000Z stderr last"]
        second = await asyncio.wait_for(proc.stdout.readline(), 30)
        third = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert second.decode().strip() == "2026-01-31 12:00:02.000 stdout next"
        assert third.decode().strip() == "2026-01-31 12:00:03.000 stderr last"
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)


async def test_metrics_show_network_as_rates(cli: Cli, manager: Web) -> None:
    await manager.register("n1")
    now = int(time.time())
    await manager.report("n1", "network", now, rx_bytes=2048.0, tx_bytes=512.0, interval_seconds=2.0)
    await cli.login()
    shown = await cli.run("metrics", "show", "n1")
    assert shown.code == 0, shown
    row = next(line for line in shown.stdout.splitlines() if line.startswith("network"))
    assert "rx 1.0 KiB/s  tx 256 B/s" in row, shown.stdout


async def test_fleet_agents_list_and_bulk_restart_by_selector(
    cli: Cli, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]
) -> None:
    daemon, address = fake_daemon
    for node_id, env in (("p1", "prod"), ("p2", "prod"), ("d1", "dev")):
        await manager.register(
            node_id, hostname=f"{node_id}.example", labels={"env": env}, daemon_address=address
        )
        await _sync(manager, node_id, _state("a1", "running", 10, restart_count=2))
    await _sync(manager, "p1", _state("a1", "running", 10, restart_count=2), _state("broken", "error", 0))
    await cli.login()

    listed = (await cli.run("agents", "list", "--all", "--selector", "env=prod", "--json")).json()
    assert [(a["agent_id"], a["hostname"]) for a in listed["list"]] == [
        ("a1", "p1.example"),
        ("a1", "p2.example"),
        ("broken", "p1.example"),
    ]
    assert listed["list"][0]["restart_count"] == 2 and listed["list"][0]["labels"] == {"env": "prod"}
    failed = await cli.run("agents", "list", "--all", "--state", "error")
    assert failed.code == 0 and "broken" in failed.stdout and "p1.example (p1)" in failed.stdout
    assert "a1" not in failed.stdout

    bulk = await cli.run("agents", "restart", "a1", "--selector", "env=prod", "--max-parallel", "2")
    assert bulk.code == 0, bulk
    progress = [line for line in bulk.stdout.splitlines() if line.startswith("[")]
    assert sorted(line[:6] for line in progress) == ["[1/2] ", "[2/2] "]
    assert all("ok (now running, pid 4242)" in line for line in progress), bulk.stdout
    assert "restart of agent a1: 2 ok, 0 failed" in bulk.stdout
    assert sorted(daemon.operations) == [("a1", "restart"), ("a1", "restart")]
    audit = (await manager.get("/api/v1/admin/audit", action="agents.operate")).json()["data"]["list"]
    assert sorted(e["target"] for e in audit) == ["node_id=p1 agent_id=a1", "node_id=p2 agent_id=a1"]

    one_fails = await cli.run("agents", "start", "broken", "--selector", "env=prod")
    assert one_fails.code == 1 and "1 failed" in one_fails.stdout and "binary missing" in one_fails.stdout
    usage = await cli.run("agents", "restart", "p1", "a1", "--selector", "env=prod")
    assert usage.code == 2

    rest = expect(
        await manager.http.post(
            "/api/v1/agents/a1/operate",
            json={"operation": "restart", "selector": ["env=prod"], "max_parallel": 5},
            headers=await manager.admin(),
        ),
        200,
        0,
    )["data"]
    assert [(r["node_id"], r["success"], r["pid"]) for r in rest["results"]] == [
        ("p1", True, 4242),
        ("p2", True, 4242),
    ]
    per_node = (await manager.get("/api/v1/admin/audit", action="agents.bulk_operate")).json()["data"]["list"]
    assert sorted(e["target"] for e in per_node) == ["node_id=p1 agent_id=a1", "node_id=p2 agent_id=a1"]
    no_selector = await manager.http.post(
        "/api/v1/agents/a1/operate", json={"operation": "restart"}, headers=await manager.admin()
    )
    assert no_selector.status_code == 400


async def test_timeline_records_agent_changes_with_reasons_and_operators(
    cli: Cli, manager: Web, fake_daemon: tuple[CliFakeDaemon, str]
) -> None:
    _, address = fake_daemon
    await manager.register("n1", hostname="box", daemon_address=address)
    await _sync(manager, "n1", _state("a1", "running", 11))  # the baseline: no event
    await _sync(manager, "n1", _state("a1", "error", 0, reason="exit code 3; too many restarts"))
    await manager.http.post(
        "/api/v1/nodes/n1/agents/a1/operate", json={"operation": "restart"}, headers=await manager.admin()
    )
    await _sync(manager, "n1", _state("a1", "running", 12, reason="up for 1s"))
    await _sync(manager, "n1", _state("a1", "running", 13, restart_count=1, reason="health check failed"))

    async def details(**params: Any) -> list[str]:
        data = expect(await manager.get("/api/v1/events", **params), 200, 0)["data"]
        return [f"{e['kind']}|{e['detail']}" for e in data["list"]]

    agent_events = await details(node_id="n1", kind="agent-state")
    assert agent_events == [
        "agent-state|agent a1 restarted by the supervisor (restart 1, pid 12 -> 13): health check failed"
        " (restart by operator admin)",
        "agent-state|agent a1 error -> running (pid 12): up for 1s (restart by operator admin)",
        "agent-state|agent a1 running -> error: exit code 3; too many restarts",
    ]
    assert await details(kind="operation") == ["operation|restart of agent a1 by operator admin: ok"]
    everything = await details(node_id="n1", page_size=100)
    assert everything[-1].startswith("registered|")
    both = await details(kind="operation,registered")
    assert [d.split("|")[0] for d in both] == ["operation", "registered"]
    node_page = expect(await manager.get("/api/v1/nodes/n1/events", kind="operation"), 200, 0)["data"]
    assert [e["kind"] for e in node_page["events"]] == ["operation"]
    bad = await manager.get("/api/v1/events", kind="nonsense")
    assert bad.status_code == 400

    await cli.login()
    shown = await cli.run("events", "--node", "box", "--kind", "operation")
    assert shown.code == 0 and "restart of agent a1 by operator admin: ok" in shown.stdout
    assert "box (n1)" in shown.stdout
