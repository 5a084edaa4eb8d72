"""/health, /ready, /metrics, OpenAPI, the HTTP server's lifecycle and the audit log."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from opsfleet.common.errors import ConfigError
from opsfleet.manager.app import ManagerApp
from opsfleet.proto import manager_pb2
from tests.helpers import assert_eventually
from tests.integration.web.support import Web, expect


async def test_health_ready_docs_and_root(web_sqlite: Web) -> None:
    web = web_sqlite
    health = (await web.http.get("/health")).json()
    assert health["status"] == "ok" and health["time"].endswith("Z") and "code" not in health
    ready = await web.http.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert (await web.http.get("/docs")).status_code == 200
    paths = (await web.http.get("/openapi.json")).json()["paths"]
    assert (
        "/api/v1/nodes/{node_id}/agents/{agent_id}/operate" in paths and "/api/v1/auth/register" not in paths
    )
    root = await web.http.get("/")
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")  # the dashboard
    expect(await web.http.get("/api/v1/nope"), 404, 1004)


async def test_ready_is_503_without_database(start_web: Callable[..., Any], tmp_path: Path) -> None:
    web: Web = await start_web(f"sqlite:///{tmp_path / 'r.db'}")
    await web.app.store.close()
    r = await web.http.get("/ready")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"


async def test_prometheus_metrics(web: Web) -> None:
    now = int(time.time())  # the overview reads the last 15 minutes: not the import-time NOW
    await web.register("n1")
    await web.report("n1", "cpu", now - 30, usage_percent=42.5)
    await web.report("n1", "memory", now - 30, usage_percent=12.0)
    for _ in range(3):
        await web.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="n1", timestamp=1))
    with contextlib.suppress(grpc.aio.AioRpcError):
        await web.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id="ghost", timestamp=1))
    text = (await web.http.get("/metrics")).text
    method = "/manager.ManagerService/Heartbeat"
    assert f'opsfleet_grpc_server_handled_total{{code="OK",method="{method}"}} 3.0' in text
    assert f'opsfleet_grpc_server_handled_total{{code="NOT_FOUND",method="{method}"}} 1.0' in text
    assert f'opsfleet_grpc_server_handling_seconds_count{{method="{method}"}} 4.0' in text
    assert f'opsfleet_grpc_server_handling_seconds_bucket{{le="0.005",method="{method}"}}' in text
    assert 'opsfleet_nodes{status="online"} 1.0' in text and "opsfleet_connected_daemons 1.0" in text
    assert 'opsfleet_node_usage_percent{node_id="n1",type="cpu"} 42.5' in text
    assert "opsfleet_metrics_write_batch_rows_count" in text
    assert "opsfleet_metrics_write_batch_rows_count 0.0" not in text


async def test_http_stops_before_grpc_and_port_is_freed(
    start_web: Callable[..., Any], tmp_path: Path
) -> None:
    web: Web = await start_web(f"sqlite:///{tmp_path / 's.db'}")
    port = web.app.http_port
    assert port > 0
    await web.app.stop()
    await web.app.stop()  # idempotent

    async def refused() -> bool:
        try:
            async with httpx.AsyncClient() as c:
                await c.get(f"http://127.0.0.1:{port}/health")
        except httpx.ConnectError:
            return True
        return False

    await assert_eventually(refused, timeout=5.0)


async def test_http_port_in_use_is_a_config_error(
    start_web: Callable[..., Any], manager_config: Callable[..., Any], tmp_path: Path
) -> None:
    web: Web = await start_web(f"sqlite:///{tmp_path / 'p1.db'}")
    app = ManagerApp(manager_config(f"sqlite:///{tmp_path / 'p2.db'}", server__port=web.app.http_port))
    try:
        with pytest.raises(ConfigError, match=r"server\.port"):
            await app.start()
    finally:
        await app.stop()


async def test_audit_log(web: Web) -> None:
    admin = await web.admin()
    await web.create_user("bob", "viewer")
    await web.http.post("/api/v1/auth/login", json={"username": "bob", "password": "bad-password"})
    viewer = await web.user_headers("viewer", "vee")
    await web.http.delete("/api/v1/admin/nodes/n9", headers=viewer)  # 403, still audited
    await web.http.get("/api/v1/nodes", headers=viewer)  # reads are not audited
    data = expect(await web.get("/api/v1/admin/audit", page_size=100), 200, 0)["data"]
    entries = data["list"]
    summary = [(e["username"], e["action"], e["result"], e["status"], e["code"]) for e in entries]
    assert summary == [
        ("vee", "admin.nodes.delete", "failure", 403, 1003),
        ("vee", "auth.login", "success", 200, 0),
        ("admin", "admin.users.create", "success", 201, 0),
        ("bob", "auth.login", "failure", 401, 1009),
        ("admin", "admin.users.create", "success", 201, 0),
        ("admin", "auth.login", "success", 200, 0),
    ]
    assert entries[0]["target"] == "node_id=n9" and entries[0]["source_ip"] == "127.0.0.1"
    assert entries[3]["target"] == "user:bob" and "wrong username" in entries[3]["detail"]
    assert entries[4]["detail"] == "role=viewer" and entries[0]["at"].endswith("Z")
    only = expect(await web.get("/api/v1/admin/audit", username="bob"), 200, 0)["data"]
    assert only["page_info"]["total"] == 1
    by_action = expect(await web.get("/api/v1/admin/audit", action="auth.login", page_size=2), 200, 0)["data"]
    assert by_action["page_info"] == {"page": 1, "page_size": 2, "total": 3, "pages": 2}
    assert admin  # the admin token was issued by the first audited login


async def test_audit_entry_is_written_before_the_response(web_sqlite: Web) -> None:
    web = web_sqlite
    r = await web.http.post("/api/v1/admin/users", json={"username": "z1", "password": "password-123"})
    expect(r, 401, 1002)
    page = await web.app.audit.list(1, 10)
    assert page.total == 1 and page.items[0].action == "admin.users.create" and page.items[0].code == 1002
