"""Support code for REST API tests: a running Manager with an HTTP client, and a fake daemon."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import httpx

from opsfleet.manager.app import ManagerApp
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc

ADMIN_PASSWORD = "fleet-keeper-2718"
# Recent timestamps: retention (30 days by default) must not touch test samples.
NOW = int(time.time())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Web:
    """A started ManagerApp, an httpx client on its REST API and a gRPC stub on its ManagerService."""

    def __init__(self, app: ManagerApp, channel: grpc.aio.Channel) -> None:
        self.app = app
        self.channel = channel
        self.manager = manager_pb2_grpc.ManagerServiceStub(channel)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}", timeout=10.0)
        self._admin: dict[str, str] | None = None

    async def close(self) -> None:
        await self.http.aclose()
        await self.channel.close()

    async def login(self, username: str, password: str) -> str:
        r = await self.http.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        token: str = r.json()["data"]["token"]
        return token

    async def admin(self) -> dict[str, str]:
        if self._admin is None:
            self._admin = bearer(await self.login("admin", ADMIN_PASSWORD))
        return self._admin

    async def create_user(self, username: str, role: str, password: str = "password-123") -> dict[str, Any]:
        r = await self.http.post(
            "/api/v1/admin/users",
            json={"username": username, "password": password, "role": role},
            headers=await self.admin(),
        )
        assert r.status_code == 201, r.text
        user: dict[str, Any] = r.json()["data"]
        return user

    async def user_headers(self, role: str, username: str | None = None) -> dict[str, str]:
        name = username or f"{role}-user"
        await self.create_user(name, role)
        return bearer(await self.login(name, "password-123"))

    async def register(self, node_id: str = "node-1", **kw: Any) -> None:
        fields: dict[str, Any] = {
            "node_id": node_id,
            "hostname": f"host-{node_id}",
            "ip": "10.0.0.5",
            "os": "linux",
            "arch": "amd64",
            "labels": {"env": "test"},
            "daemon_version": "0.1.0",
            "agent_version": "1.0",
        }
        fields.update(kw)
        resp = await self.manager.RegisterNode(manager_pb2.RegisterNodeRequest(**fields))
        assert resp.success

    async def report(self, node_id: str, type_: str, timestamp: int, **values: float) -> None:
        metric = manager_pb2.MetricData(type=type_, timestamp=timestamp, values=values)
        resp = await self.manager.ReportMetrics(
            manager_pb2.ReportMetricsRequest(node_id=node_id, metrics=[metric])
        )
        assert resp.success and resp.accepted == 1

    async def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=headers or await self.admin())


def expect(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """Assert the HTTP status and envelope code; the envelope."""
    assert response.status_code == status, response.text
    envelope: dict[str, Any] = response.json()
    assert set(envelope) == {"code", "message", "data", "timestamp"}, envelope
    assert envelope["code"] == code, envelope
    return envelope


class FakeDaemon(daemon_pb2_grpc.DaemonServiceServicer):
    """DaemonService with canned answers: agents a1 (running) and slow (OperateAgent never answers)."""

    def __init__(self) -> None:
        self.agents = {
            "a1": daemon_pb2.AgentInfo(id="a1", type="exporter", version="1.2", status="running", pid=4242),
            "slow": daemon_pb2.AgentInfo(id="slow", type="exporter", version="1.0", status="running", pid=7),
        }
        self.operations: list[tuple[str, str]] = []
        self.logs = [f"line {i} {'error' if i % 10 == 0 else 'info'}" for i in range(1, 301)]

    async def _known(self, agent_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if agent_id not in self.agents:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"agent {agent_id} not found")

    async def ListAgents(self, request: Any, context: Any) -> daemon_pb2.ListAgentsResponse:
        return daemon_pb2.ListAgentsResponse(agents=list(self.agents.values()))

    async def OperateAgent(self, request: Any, context: Any) -> daemon_pb2.AgentOperationResponse:
        await self._known(request.agent_id, context)
        if request.agent_id == "slow":
            await asyncio.sleep(30)
        self.operations.append((request.agent_id, request.operation))
        return daemon_pb2.AgentOperationResponse(success=True)

    async def GetAgentMetrics(self, request: Any, context: Any) -> daemon_pb2.AgentMetricsResponse:
        await self._known(request.agent_id, context)
        points = [
            daemon_pb2.ResourceDataPoint(
                timestamp=NOW - i * 60, cpu=1.5 * i, memory_rss=1000 + i, open_files=3
            )
            for i in range(min(request.duration_seconds // 60, 5))
        ]
        return daemon_pb2.AgentMetricsResponse(agent_id=request.agent_id, data_points=points)

    async def GetAgentLogs(self, request: Any, context: Any) -> daemon_pb2.AgentLogsResponse:
        await self._known(request.agent_id, context)
        lines = [line for line in self.logs if request.filter in line]
        return daemon_pb2.AgentLogsResponse(agent_id=request.agent_id, lines=lines[-request.lines :])
