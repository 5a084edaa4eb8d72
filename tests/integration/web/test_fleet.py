"""/api/v1/agents and /api/v1/events on SQLite and PostgreSQL: filters, paging, the dry run of
a bulk operation, restart counts kept from the daemon's syncs, and timeline filters."""

from __future__ import annotations

from typing import Any

from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.integration.web.support import Web, expect


async def _sync(web: Web, node_id: str, *states: tuple[str, str, int, int]) -> None:
    stub = daemon_pb2_grpc.DaemonServiceStub(web.channel)
    request = daemon_pb2.SyncAgentStatesRequest(
        node_id=node_id,
        states=[
            daemon_pb2.AgentState(
                agent_id=a,
                status=st,
                pid=pid,
                restart_count=restarts,
                type="filebeat",
                version="8",
                reason="r",
            )
            for a, st, pid, restarts in states
        ],
    )
    assert (await stub.SyncAgentStates(request)).success


async def test_fleet_agents_filters_paging_and_dry_run(web: Web) -> None:
    for node_id, env in (("p1", "prod"), ("p2", "prod"), ("d1", "dev")):
        await web.register(node_id, hostname=f"{node_id}.example", labels={"env": env, "tier": "web"})
        await _sync(web, node_id, ("filebeat", "running", 100, 3), ("exporter", "stopped", 0, 0))
    await _sync(web, "d1", ("filebeat", "error", 0, 5))  # exporter is removed now

    async def agents(**params: Any) -> list[tuple[str, str, str, int]]:
        data = expect(await web.get("/api/v1/agents", **params), 200, 0)["data"]
        return [(a["agent_id"], a["node_id"], a["status"], a["restart_count"]) for a in data["list"]]

    assert await agents(selector="env=prod,tier=web", agent_id="filebeat") == [
        ("filebeat", "p1", "running", 3),
        ("filebeat", "p2", "running", 3),
    ]
    assert await agents(state="error") == [("filebeat", "d1", "error", 5)]
    assert await agents(state="removed") == [("exporter", "d1", "removed", 0)]
    assert await agents(q="P2.EXA") == [("exporter", "p2", "stopped", 0), ("filebeat", "p2", "running", 3)]
    page = expect(await web.get("/api/v1/agents", page=2, page_size=2), 200, 0)["data"]
    assert page["page_info"] == {"page": 2, "page_size": 2, "total": 5, "pages": 3}
    stored = expect(await web.get("/api/v1/nodes/p1/agents"), 200, 0)["data"]["agents"]
    assert {a["agent_id"]: a["restart_count"] for a in stored} == {"exporter": 0, "filebeat": 3}

    plan = expect(
        await web.http.post(
            "/api/v1/agents/filebeat/operate",
            json={"operation": "restart", "selector": ["env=prod"], "dry_run": True},
            headers=await web.admin(),
        ),
        200,
        0,
    )["data"]
    assert [(r["node_id"], r["hostname"]) for r in plan["results"]] == [
        ("p1", "p1.example"),
        ("p2", "p2.example"),
    ]
    assert (await web.get("/api/v1/agents", selector="novalue")).status_code == 400


async def test_events_filter_by_node_kind_and_since(web: Web) -> None:
    await web.register("n1", hostname="one")
    await web.register("n2", hostname="two")
    await _sync(web, "n1", ("filebeat", "running", 1, 0))
    await _sync(web, "n1", ("filebeat", "error", 0, 0))
    await _sync(web, "n2", ("filebeat", "running", 1, 0))

    async def events(**params: Any) -> list[tuple[str, str, str]]:
        data = expect(await web.get("/api/v1/events", **params), 200, 0)["data"]
        return [(e["node_id"], e["hostname"], e["kind"]) for e in data["list"]]

    assert await events(kind="agent-state") == [("n1", "one", "agent-state")]
    assert await events(node_id="n2") == [("n2", "two", "registered")]
    assert len(await events()) == 3
    assert await events(since="2999-01-01T00:00:00Z") == []
    assert (await web.get("/api/v1/events", since="yesterday")).status_code == 400


async def test_node_ref_matches_exact_id_then_case_sensitive_prefix_or_hostname(web: Web) -> None:
    await web.register("abc-1", hostname="one")
    await web.register("abc-12", hostname="two")
    await web.register("ABD", hostname="abc")

    async def refs(ref: str) -> list[str]:
        data = expect(await web.get("/api/v1/nodes", ref=ref), 200, 0)["data"]
        return [n["node_id"] for n in data["list"]]

    assert await refs("abc-1") == ["abc-1"]  # the exact id wins over abc-12
    assert await refs("abc") == ["ABD", "abc-1", "abc-12"]  # two prefixes and one hostname
    assert await refs("AB") == ["ABD"]
    assert await refs("a%") == []
    assert await refs("two") == ["abc-12"]
