"""Agents through the REST API against a real (fake) DaemonService: sync, operate, metrics, logs, errors."""

from __future__ import annotations

import socket

from tests.integration.web.support import FakeDaemon, Web, expect


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_list_sync_and_stored_agents(web: Web, fake_daemon: tuple[FakeDaemon, str]) -> None:
    _, address = fake_daemon
    await web.register("n1", daemon_address=address)
    assert expect(await web.get("/api/v1/nodes/n1/agents"), 200, 0)["data"] == {"agents": [], "count": 0}
    synced = expect(await web.http.post("/api/v1/nodes/n1/agents/sync", headers=await web.admin()), 200, 0)
    assert synced["data"]["count"] == 2
    assert synced["data"]["agents"][0]["agent_id"] == "a1" and synced["data"]["agents"][0]["pid"] == 4242
    stored = expect(await web.get("/api/v1/nodes/n1/agents"), 200, 0)["data"]
    assert stored["count"] == 2
    assert {a["agent_id"]: a["status"] for a in stored["agents"]} == {"a1": "running", "slow": "running"}
    expect(await web.http.post("/api/v1/nodes/ghost/agents/sync", headers=await web.admin()), 404, 2001)


async def test_operate_records_and_roles(web_sqlite: Web, fake_daemon: tuple[FakeDaemon, str]) -> None:
    web = web_sqlite
    daemon, address = fake_daemon
    await web.register("n1", daemon_address=address)
    operator = await web.user_headers("operator", "opal")
    r = await web.http.post(
        "/api/v1/nodes/n1/agents/a1/operate", json={"operation": "restart"}, headers=operator
    )
    record = expect(r, 200, 0)["data"]
    assert record["operation"] == "restart" and record["success"] is True and record["username"] == "opal"
    assert daemon.operations == [("a1", "restart")]

    viewer = await web.user_headers("viewer", "vera")
    r = await web.http.post("/api/v1/nodes/n1/agents/a1/operate", json={"operation": "stop"}, headers=viewer)
    expect(r, 403, 1003)
    expect(await web.http.post("/api/v1/nodes/n1/agents/a1/operate", json={"operation": "stop"}), 401, 1002)
    assert daemon.operations == [("a1", "restart")]

    bad = await web.http.post(
        "/api/v1/nodes/n1/agents/a1/operate", json={"operation": "explode"}, headers=operator
    )
    assert "operation" in expect(bad, 400, 1001)["message"]
    missing = await web.http.post("/api/v1/nodes/n1/agents/a1/operate", json={}, headers=operator)
    assert expect(missing, 400, 1001)["data"]["field"] == "operation"
    r = await web.http.post(
        "/api/v1/nodes/n1/agents/nope/operate", json={"operation": "start"}, headers=operator
    )
    expect(r, 404, 1004)
    r = await web.http.post(
        "/api/v1/nodes/ghost/agents/a1/operate", json={"operation": "start"}, headers=operator
    )
    expect(r, 404, 2001)

    history = expect(await web.get("/api/v1/nodes/n1/agents/operations"), 200, 0)["data"]
    assert [(o["agent_id"], o["success"]) for o in history["operations"]] == [("nope", False), ("a1", True)]
    only = expect(await web.get("/api/v1/nodes/n1/agents/operations", agent_id="a1"), 200, 0)["data"]
    assert only["count"] == 1


async def test_daemon_down_is_502_and_timeout_is_504(
    web_sqlite: Web, fake_daemon: tuple[FakeDaemon, str]
) -> None:
    web = web_sqlite
    _, address = fake_daemon
    await web.register("down", daemon_address=f"127.0.0.1:{closed_port()}")
    await web.register("n1", daemon_address=address)
    admin = await web.admin()
    r = await web.http.post(
        "/api/v1/nodes/down/agents/a1/operate", json={"operation": "start"}, headers=admin
    )
    assert "unreachable" in expect(r, 502, 5004)["message"]
    expect(await web.http.post("/api/v1/nodes/down/agents/sync", headers=admin), 502, 5004)
    expect(await web.get("/api/v1/nodes/down/agents/a1/logs"), 502, 5004)
    # agents.operate_timeout is 0.5 s in this fixture; the fake never answers for "slow".
    r = await web.http.post("/api/v1/nodes/n1/agents/slow/operate", json={"operation": "stop"}, headers=admin)
    assert "did not answer in time" in expect(r, 504, 5004)["message"]
    await web.register("nowhere")  # registered without a daemon address
    r = await web.http.post(
        "/api/v1/nodes/nowhere/agents/a1/operate", json={"operation": "start"}, headers=admin
    )
    expect(r, 502, 5004)


async def test_agent_metrics_and_logs(web_sqlite: Web, fake_daemon: tuple[FakeDaemon, str]) -> None:
    web = web_sqlite
    _, address = fake_daemon
    await web.register("n1", daemon_address=address)
    viewer = await web.user_headers("viewer")
    data = expect(await web.get("/api/v1/nodes/n1/agents/a1/metrics", headers=viewer), 200, 0)["data"]
    assert data["agent_id"] == "a1" and data["count"] == 5 and len(data["data_points"]) == 5
    assert set(data["data_points"][1]) >= {"timestamp", "cpu", "memory_rss", "open_files"}
    short = expect(await web.get("/api/v1/nodes/n1/agents/a1/metrics", duration=120), 200, 0)["data"]
    assert short["count"] == 2
    for duration in (0, 604801, "x"):
        env = expect(await web.get("/api/v1/nodes/n1/agents/a1/metrics", duration=duration), 400, 1001)
        assert env["data"]["field"] == "duration"

    logs = expect(await web.get("/api/v1/nodes/n1/agents/a1/logs", headers=viewer), 200, 0)["data"]
    assert logs["count"] == 100 and logs["lines"][-1] == "line 300 error"
    errors = expect(await web.get("/api/v1/nodes/n1/agents/a1/logs", lines=3, filter="error"), 200, 0)["data"]
    assert errors["lines"] == ["line 280 error", "line 290 error", "line 300 error"]
    for lines in (0, 1001):
        assert (
            expect(await web.get("/api/v1/nodes/n1/agents/a1/logs", lines=lines), 400, 1001)["data"]["field"]
            == "lines"
        )
    expect(await web.get("/api/v1/nodes/n1/agents/nope/logs"), 404, 1004)
    expect(await web.get("/api/v1/nodes/n1/agents/bad%20id/logs"), 400, 1001)
    expect(await web.get("/api/v1/nodes/ghost/agents/a1/metrics"), 404, 2001)
