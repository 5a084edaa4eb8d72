"""Support for the outage tests: a Manager with gRPC and REST clients, and call outcomes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from opsfleet.manager.app import ManagerApp
from opsfleet.proto import manager_pb2, manager_pb2_grpc

PUSHBACK = "grpc-retry-pushback-ms"
ADMIN_PASSWORD = "fleet-keeper-2718"


@dataclass(frozen=True)
class Outcome:
    """How one call ended: its status code, the retry delay it carried, and how long it took."""

    code: grpc.StatusCode
    retry_ms: int | None
    seconds: float
    details: str = ""


class Manager:
    """A started ManagerApp with a ManagerService stub and an HTTP client on its REST API."""

    def __init__(self, app: ManagerApp) -> None:
        self.app = app
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
        self.stub = manager_pb2_grpc.ManagerServiceStub(self.channel)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}", timeout=10.0)

    async def close(self) -> None:
        await self.http.aclose()
        await self.channel.close()
        await self.app.stop()

    async def register(self, node_id: str, timeout: float = 10.0) -> Outcome:
        request = manager_pb2.RegisterNodeRequest(
            node_id=node_id,
            hostname=f"host-{node_id}",
            ip="10.0.0.7",
            os="linux",
            arch="amd64",
            daemon_version="0.1.0",
            agent_version="1.0",
        )
        return await outcome(self.stub.RegisterNode(request, timeout=timeout))

    async def report(self, node_id: str, timestamps: list[int], timeout: float = 10.0) -> Outcome:
        metrics = [
            manager_pb2.MetricData(type="cpu", timestamp=ts, values={"usage_percent": float(ts % 100)})
            for ts in timestamps
        ]
        request = manager_pb2.ReportMetricsRequest(node_id=node_id, metrics=metrics)
        return await outcome(self.stub.ReportMetrics(request, timeout=timeout))

    async def ready(self) -> int:
        return (await self.http.get("/ready")).status_code

    async def stored(self, node_id: str) -> set[int]:
        samples = await self.app.store.query_metrics(node_id, "cpu", 0, 2**40)
        return {s.timestamp for s in samples}


async def outcome(call: Any) -> Outcome:
    started = time.monotonic()
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        trailing = dict(exc.trailing_metadata() or ())
        retry = trailing.get(PUSHBACK)
        return Outcome(
            exc.code(),
            int(retry) if retry is not None else None,
            time.monotonic() - started,
            exc.details() or "",
        )
    code = await call.code()
    return Outcome(code, None, time.monotonic() - started)


@pytest.fixture
async def start_manager(manager_config: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Start Managers (gRPC and HTTP on 127.0.0.1:0) on demand; all are stopped at teardown."""
    started: list[Manager] = []

    async def start(database_url: str, **overrides: Any) -> Manager:
        overrides.setdefault("auth__admin_password", ADMIN_PASSWORD)
        app = ManagerApp(manager_config(database_url, **overrides))
        await app.start()
        manager = Manager(app)
        started.append(manager)
        return manager

    yield start
    for manager in reversed(started):
        await manager.close()


async def assert_stays_not_ready(manager: Manager, seconds: float = 3.0) -> None:
    """/ready answers 503 on every poll for ``seconds`` (longer than the 2 s during which the
    last write outcome answers alone, so the probe write is exercised too)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await manager.ready() == 503
        await asyncio.sleep(0.25)


def integrity_ok(db: Path) -> bool:
    """``PRAGMA integrity_check`` of an SQLite file, read through a separate connection."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def recent_timestamps(count: int, start: int = 0) -> list[int]:
    """``count`` distinct timestamps within the last hours (inside any retention)."""
    now = int(time.time()) - 3600
    return [now - start - i for i in range(count)]
