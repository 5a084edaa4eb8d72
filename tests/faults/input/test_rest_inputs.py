"""REST inputs that reach the database: a control character is a 400, never a 5xx, and no
request can make its own audit entry fail."""

from __future__ import annotations

from opsfleet.proto import daemon_pb2
from tests.integration.web.support import FakeDaemon, Web, expect

BAD_PARAMETERS = 1001
UPSTREAM = 5004


async def test_control_characters_in_query_parameters_are_400(web: Web) -> None:
    await web.register("n1")
    headers = await web.admin()
    for params in ({"q": "host\x00"}, {"label": "env:te\x00st"}, {"q": "a\nb"}):
        r = await web.http.get("/api/v1/nodes", params=params, headers=headers)
        envelope = expect(r, 400, BAD_PARAMETERS)
        assert "control character" in envelope["message"], envelope
    r = await web.http.get(
        "/api/v1/nodes/n1/agents/operations", params={"agent_id": "a\x00"}, headers=headers
    )
    expect(r, 400, BAD_PARAMETERS)
    for node_id in ("..%2F..", "%00n1", "."):
        r = await web.http.get(f"/api/v1/metrics/nodes/{node_id}/latest", headers=headers)
        assert r.status_code in (400, 404), r.text


async def test_audit_entry_of_a_hostile_request_is_stored_escaped(web: Web) -> None:
    headers = await web.admin()
    long_id = "x" * 400
    for node_id in ("%00evil", "a%0Aforged%20line", long_id):
        r = await web.http.delete(f"/api/v1/admin/nodes/{node_id}", headers=headers)
        expect(r, 400, BAD_PARAMETERS)
    r = await web.http.get("/api/v1/admin/audit", params={"action": "admin.nodes.delete"}, headers=headers)
    entries = expect(r, 200, 0)["data"]["list"]
    targets = sorted(e["target"] for e in entries)
    assert len(entries) == 3, entries
    assert "node_id=\\x00evil" in targets and "node_id=a\\nforged line" in targets
    assert all(len(t) <= 255 for t in targets)
    assert not any("\x00" in t or "\n" in t for t in targets)


async def test_agents_a_daemon_reports_are_checked_before_they_are_stored(
    web: Web, fake_daemon: tuple[FakeDaemon, str]
) -> None:
    servicer, address = fake_daemon
    await web.register("n1", daemon_address=address)
    servicer.agents["bad"] = daemon_pb2.AgentInfo(id="bad", type="exp\x00orter", status="running")
    r = await web.http.post("/api/v1/nodes/n1/agents/sync", headers=await web.admin())
    envelope = expect(r, 502, UPSTREAM)
    assert "states[2].type" in envelope["message"], envelope
    assert await web.app.store.list_agents("n1") == []
    del servicer.agents["bad"]
    r = await web.http.post("/api/v1/nodes/n1/agents/sync", headers=await web.admin())
    expect(r, 200, 0)
    assert len(await web.app.store.list_agents("n1")) == 2
