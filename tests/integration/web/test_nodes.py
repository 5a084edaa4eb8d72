"""Nodes: paged lists with filters, statistics, one node, events, deletion and re-registration."""

from __future__ import annotations

import time

import grpc
import pytest

from opsfleet.proto import manager_pb2
from tests.integration.web.support import NOW, Web, expect


async def _fleet(web: Web) -> None:
    await web.register(
        "web-1", hostname="web-a.example", ip="10.0.0.1", labels={"env": "prod", "role": "web"}
    )
    await web.register(
        "web-2", hostname="web-b.example", ip="10.0.0.2", labels={"env": "prod", "role": "web"}
    )
    await web.register("db-1", hostname="db.example", ip="10.0.1.9", labels={"env": "prod", "role": "db"})
    await web.register("lab-1", hostname="lab", ip="192.168.7.7", labels={"env": "lab"})


async def test_list_filters_and_paging(web: Web) -> None:
    await _fleet(web)
    data = expect(await web.get("/api/v1/nodes"), 200, 0)["data"]
    assert data["page_info"] == {"page": 1, "page_size": 20, "total": 4, "pages": 1}
    assert [n["node_id"] for n in data["list"]] == ["db-1", "lab-1", "web-1", "web-2"]
    node = data["list"][0]
    assert node["status"] == "online" and node["labels"] == {"env": "prod", "role": "db"}
    assert node["registered_at"].endswith("Z")

    async def ids(**params: object) -> list[str]:
        return [
            n["node_id"] for n in expect(await web.get("/api/v1/nodes", **params), 200, 0)["data"]["list"]
        ]

    assert await ids(label="role:web") == ["web-1", "web-2"]
    assert await ids(label=["env:prod", "role:db"]) == ["db-1"]
    assert await ids(label="env:prod,role:web") == ["web-1", "web-2"]
    assert await ids(label="env=prod,role=web") == ["web-1", "web-2"]
    assert await ids(label="env:nowhere") == []
    assert await ids(q="WEB-B") == ["web-2"]
    assert await ids(q="192.168") == ["lab-1"]
    assert await ids(q="%") == []
    assert await ids(status="online", q="db") == ["db-1"]
    assert await ids(status="offline") == []
    page = expect(await web.get("/api/v1/nodes", page=2, page_size=3), 200, 0)["data"]
    assert [n["node_id"] for n in page["list"]] == ["web-2"]
    assert page["page_info"] == {"page": 2, "page_size": 3, "total": 4, "pages": 2}


async def test_list_rejects_bad_parameters(web: Web) -> None:
    for params, field in [
        ({"page_size": 101}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"status": "sleeping"}, "status"),
        ({"label": "novalue"}, "label"),
        ({"label": "bad key:v"}, "label"),
    ]:
        env = expect(await web.get("/api/v1/nodes", **params), 400, 1001)
        assert env["message"].startswith(field), env


async def test_statistics_get_and_events(web: Web) -> None:
    await _fleet(web)
    now = time.time()
    await web.app.store.mark_offline(cutoff=now + 10, now=now)  # every node silent -> offline
    await web.register("web-1", hostname="web-a.example", ip="10.0.0.1")
    stats = expect(await web.get("/api/v1/nodes/statistics"), 200, 0)["data"]
    assert stats == {"statistics": {"total": 4, "online": 1, "offline": 3}}
    node = expect(await web.get("/api/v1/nodes/web-1"), 200, 0)["data"]
    assert node["hostname"] == "web-a.example" and node["status"] == "online"
    events = expect(await web.get("/api/v1/nodes/web-1/events"), 200, 0)["data"]
    assert [e["kind"] for e in events["events"]] == ["re-registered", "offline", "registered"]
    assert events["count"] == 3
    limited = expect(await web.get("/api/v1/nodes/web-1/events", limit=1), 200, 0)["data"]
    assert limited["count"] == 1
    expect(await web.get("/api/v1/nodes/web-1/events", limit=0), 400, 1001)


async def test_unknown_node_is_2001(web: Web) -> None:
    for path in (
        "/api/v1/nodes/ghost",
        "/api/v1/nodes/ghost/events",
        "/api/v1/nodes/ghost/agents",
        "/api/v1/metrics/nodes/ghost/latest",
        "/api/v1/metrics/nodes/ghost/summary",
        "/api/v1/metrics/nodes/ghost/cpu/history",
    ):
        assert expect(await web.get(path), 404, 2001)["message"] == "node ghost is not registered", path
    expect(await web.http.delete("/api/v1/admin/nodes/ghost", headers=await web.admin()), 404, 2001)
    expect(await web.get("/api/v1/nodes/bad%20id"), 400, 1001)


async def test_delete_node_and_register_again(web: Web) -> None:
    await web.register("gone-1")
    await web.report("gone-1", "cpu", NOW - 60, usage_percent=5.0)
    await web.app.agents.sync_states("gone-1", [])
    r = await web.http.delete("/api/v1/admin/nodes/gone-1", headers=await web.admin())
    assert expect(r, 200, 0)["data"] == {"node_id": "gone-1", "deleted": True}
    expect(await web.get("/api/v1/nodes/gone-1"), 404, 2001)
    assert await web.app.store.count_metrics("gone-1") == 0
    assert await web.app.store.list_events("gone-1") == []
    # The manager forgot it: heartbeats are refused until it registers again, which works.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await web.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="gone-1", timestamp=1))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    await web.register("gone-1")
    events = expect(await web.get("/api/v1/nodes/gone-1/events"), 200, 0)["data"]["events"]
    assert [e["kind"] for e in events] == ["registered"]
