"""Fixtures for CLI tests: a Manager (SQLite) in the test's loop, a fake daemon, the CLI runners."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.integration.cli.support import Cli, InProcess, start_manager
from tests.integration.web.support import ADMIN_PASSWORD, FakeDaemon, Web


class CliFakeDaemon(FakeDaemon):
    """The REST tests' fake daemon plus an agent ``broken`` whose operations report failure."""

    def __init__(self) -> None:
        super().__init__()
        self.agents["broken"] = daemon_pb2.AgentInfo(
            id="broken", type="exporter", version="0.9", status="crashed", pid=0
        )

    async def OperateAgent(self, request: Any, context: Any) -> daemon_pb2.AgentOperationResponse:
        if request.agent_id == "broken":
            self.operations.append((request.agent_id, request.operation))
            return daemon_pb2.AgentOperationResponse(success=False, error_message="binary missing")
        return await super().OperateAgent(request, context)


@pytest.fixture
async def manager(tmp_path: Path, manager_config: Callable[..., Any]) -> AsyncIterator[Web]:
    """A Manager on SQLite with gRPC and HTTP on 127.0.0.1:0; agent operations time out after 0.5 s."""
    config = manager_config(
        f"sqlite:///{tmp_path / 'cli.db'}", auth__admin_password=ADMIN_PASSWORD, agents__operate_timeout=0.5
    )
    web = await start_manager(config)
    yield web
    await web.close()
    await web.app.stop()


@pytest.fixture
async def fake_daemon() -> AsyncIterator[tuple[CliFakeDaemon, str]]:
    """A real grpc.aio DaemonService with canned answers on 127.0.0.1:0; (servicer, address)."""
    servicer = CliFakeDaemon()
    server = grpc.aio.server()
    daemon_pb2_grpc.add_DaemonServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
def cli(manager: Web, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(f"http://127.0.0.1:{manager.app.http_port}", tmp_path / "profile" / "cli.json", home)


@pytest.fixture
def run_main(cli: Cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcess:
    return InProcess(cli, capsys, monkeypatch)
