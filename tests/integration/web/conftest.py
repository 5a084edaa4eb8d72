from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.manager.app import ManagerApp
from opsfleet.proto import daemon_pb2_grpc
from tests.integration.web.support import ADMIN_PASSWORD, FakeDaemon, Web


@pytest.fixture
async def start_web(manager_config: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Start Managers (gRPC and HTTP on 127.0.0.1:0) on demand; all are stopped at teardown."""
    started: list[Web] = []

    async def start(database_url: str, **overrides: Any) -> Web:
        overrides.setdefault("auth__admin_password", ADMIN_PASSWORD)
        app = ManagerApp(manager_config(database_url, **overrides))
        await app.start()
        web = Web(app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}"))
        started.append(web)
        return web

    yield start
    for web in reversed(started):
        await web.close()
        await web.app.stop()


@pytest.fixture
async def web(database_url: str, start_web: Callable[..., Any]) -> Web:
    """A Manager on each database backend."""
    w: Web = await start_web(database_url)
    return w


@pytest.fixture
async def web_sqlite(tmp_path: Path, start_web: Callable[..., Any]) -> Web:
    """A Manager on SQLite only, for behaviour that does not depend on the backend."""
    w: Web = await start_web(f"sqlite:///{tmp_path / 'web.db'}", agents__operate_timeout=0.5)
    return w


@pytest.fixture
async def fake_daemon() -> AsyncIterator[tuple[FakeDaemon, str]]:
    """A real grpc.aio DaemonService with canned answers on 127.0.0.1:0; (servicer, address)."""
    servicer = FakeDaemon()
    server = grpc.aio.server()
    daemon_pb2_grpc.add_DaemonServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)
