"""/api/v1/policies and /api/v1/nodes/{id}/config: roles, validation, audit with diff, node state."""

from __future__ import annotations

from typing import Any

from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2
from tests.integration.web.support import Web, expect


def policy(args: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "web-logs",
        "selector": {"env": "test"},
        "priority": 3,
        "config": {"agents": [{"id": "beat", "binary_path": "/bin/sleep", "args": args}]},
        **extra,
    }


async def test_write_read_diff_rollback_and_audit(web_sqlite: Web) -> None:
    web = web_sqlite
    admin = await web.admin()
    await web.register("n1")
    first = expect(await web.http.post("/api/v1/policies", json=policy(["1"]), headers=admin), 200, 0)["data"]
    assert first["revision"] == 1 and first["changed"] and len(first["hash"]) == 64
    second = expect(await web.http.post("/api/v1/policies", json=policy(["2"]), headers=admin), 200, 0)[
        "data"
    ]
    assert second["revision"] == 2 and "-    - '1'" in second["diff"]
    same = expect(await web.http.post("/api/v1/policies", json=policy(["2"]), headers=admin), 200, 0)["data"]
    assert same["revision"] == 2 and not same["changed"]

    listed = expect(await web.get("/api/v1/policies"), 200, 0)["data"]
    assert [p["name"] for p in listed["policies"]] == ["web-logs"]
    assert listed["policies"][0]["counts"]["pending"] == 1
    revs = expect(await web.get("/api/v1/policies/web-logs/revisions"), 200, 0)["data"]
    assert [r["revision"] for r in revs["revisions"]] == [1, 2]
    diff = expect(await web.get("/api/v1/policies/web-logs/diff", **{"from": 1, "to": 2}), 200, 0)["data"]
    assert "+    - '2'" in diff["diff"]

    config = expect(await web.get("/api/v1/nodes/n1/config"), 200, 0)["data"]
    assert config["state"] == "pending" and config["policies"][0]["revision"] == 2
    assert config["config"]["agents"][0]["args"] == ["2"]

    # The daemon's report shows up per node and per policy.
    stub = daemon_pb2_grpc.DaemonServiceStub(web.channel)
    reply = await stub.ReportConfigState(
        daemon_pb2.ConfigStateRequest(
            node_id="n1", config_hash=config["config_hash"], state="failed", error="boom"
        )
    )
    assert reply.success
    config = expect(await web.get("/api/v1/nodes/n1/config"), 200, 0)["data"]
    assert config["state"] == "failed" and config["error"] == "boom"
    status = expect(await web.get("/api/v1/policies/web-logs/status"), 200, 0)["data"]
    assert status["counts"]["failed"] == 1 and status["nodes"][0]["error"] == "boom"

    back = await web.http.post("/api/v1/policies/web-logs/rollback", json={"revision": 1}, headers=admin)
    assert expect(back, 200, 0)["data"]["revision"] == 1
    hb = await web.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1", timestamp=1))
    rolled = expect(await web.get("/api/v1/nodes/n1/config"), 200, 0)["data"]
    assert hb.config_hash == rolled["config_hash"] != config["config_hash"]

    expect(await web.http.delete("/api/v1/policies/web-logs", headers=admin), 200, 0)
    expect(await web.get("/api/v1/policies/web-logs"), 404, 1004)

    audit = expect(await web.get("/api/v1/admin/audit", action="policies.apply"), 200, 0)["data"]
    details = [e["detail"] for e in audit["list"]]
    assert any("+    - '2'" in d for d in details) and "unchanged" in details
    rollback_audit = expect(await web.get("/api/v1/admin/audit", action="policies.rollback"), 200, 0)["data"]
    assert rollback_audit["list"][0]["target"] == "policy=web-logs revision=1"


async def test_viewers_read_operators_write(web_sqlite: Web) -> None:
    web = web_sqlite
    viewer = await web.user_headers("viewer")
    operator = await web.user_headers("operator")
    expect(await web.http.post("/api/v1/policies", json=policy(["1"]), headers=viewer), 403, 1003)
    expect(await web.http.post("/api/v1/policies", json=policy(["1"]), headers=operator), 200, 0)
    expect(await web.get("/api/v1/policies/web-logs", headers=viewer), 200, 0)
    expect(await web.http.delete("/api/v1/policies/web-logs", headers=viewer), 403, 1003)


async def test_invalid_policy_names_the_key_and_conflicts_are_409(web_sqlite: Web) -> None:
    web = web_sqlite
    admin = await web.admin()
    bad = policy(["1"])
    del bad["config"]["agents"][0]["binary_path"]
    answer = expect(await web.http.post("/api/v1/policies", json=bad, headers=admin), 400, 1001)
    assert "config.agents[0].binary_path" in answer["message"]
    expect(await web.http.post("/api/v1/policies", json=policy(["1"]), headers=admin), 200, 0)
    other = {**policy(["other"]), "name": "other", "selector": {"role": "web"}}
    conflict = expect(await web.http.post("/api/v1/policies", json=other, headers=admin), 409, 1005)
    assert "agents[beat]" in conflict["message"] and "web-logs" in conflict["message"]
