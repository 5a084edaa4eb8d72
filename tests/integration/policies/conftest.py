"""Fixtures for central configuration: a Manager with REST (SQLite), the CLI, real daemon processes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.integration.cli.support import Cli, InProcess, start_manager
from tests.integration.web.support import ADMIN_PASSWORD, Web
from tests.processes import Proc

FOREVER = str(Path(__file__).parents[2] / "programs" / "forever.py")

DAEMON_YAML = """
daemon:
  labels: {labels}
  config_grace: 4s
manager:
  address: 127.0.0.1:{port}
  heartbeat_interval: 1s
  reconnect_interval: 200ms
  reconnect_max: 1s
collectors:
  cpu: {{enabled: false}}
  memory: {{enabled: false}}
  disk: {{enabled: false}}
  network: {{enabled: false}}
"""


def agent(agent_id: str, *extra: str, binary: str = sys.executable) -> dict[str, Any]:
    return {
        "id": agent_id,
        "binary_path": binary,
        "args": [FOREVER, "--interval", "1", *extra],
        "start_seconds": "0.3s",
        "stop_timeout": "3s",
        "restart": {"max_retries": 1, "backoff_base": "0.2s"},
    }


class DaemonProc:
    """``opsfleet daemon`` as a real subprocess, with its own DaemonService to list its agents."""

    def __init__(self, proc: Proc, work_dir: Path, config: Path) -> None:
        self.proc = proc
        self.work_dir = work_dir
        self.config = config
        self.node_id = ""
        self.port = 0

    @classmethod
    async def start(cls, config: Path, work_dir: Path, *, registered: bool = True) -> DaemonProc:
        proc = await Proc.start(
            ["daemon", "--config", str(config), "--work-dir", str(work_dir), "--listen", "127.0.0.1:0"]
        )
        self = cls(proc, work_dir, config)
        self.port = int((await proc.wait_for_line(r"daemon gRPC listening on \S+:(\d+)")).group(1))
        if registered:
            self.node_id = (await proc.wait_for_line(r"registered with manager \S+ as (\S+)")).group(1)
        return self

    async def agents(self) -> dict[str, daemon_pb2.AgentInfo]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = daemon_pb2_grpc.DaemonServiceStub(channel)
            reply = await stub.ListAgents(daemon_pb2.ListAgentsRequest(), timeout=5)
        return {a.id: a for a in reply.agents}

    async def running(self) -> dict[str, int]:
        """agent id -> pid of the agents that are running."""
        return {i: a.pid for i, a in (await self.agents()).items() if a.status == "running"}

    async def stop(self) -> int:
        return await self.proc.stop()


@pytest.fixture
async def manager(tmp_path: Path, manager_config: Callable[..., Any]) -> AsyncIterator[Web]:
    config = manager_config(f"sqlite:///{tmp_path / 'policies.db'}", auth__admin_password=ADMIN_PASSWORD)
    web = await start_manager(config)
    yield web
    await web.close()
    await web.app.stop()


@pytest.fixture
def cli(manager: Web, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(f"http://127.0.0.1:{manager.app.http_port}", tmp_path / "profile" / "cli.json", home)


@pytest.fixture
def run_main(cli: Cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcess:
    """The CLI's ``main(argv)`` in a thread (faster than a subprocess per command)."""
    return InProcess(cli, capsys, monkeypatch)


@pytest.fixture
async def daemons(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start daemon processes: ``await daemons(name, labels, grpc_port)``; all stopped at teardown."""
    started: list[DaemonProc] = []

    async def start(name: str, labels: dict[str, str], port: int, **kwargs: Any) -> DaemonProc:
        config = tmp_path / f"{name}.yaml"
        config.write_text(DAEMON_YAML.format(labels=labels or "{}", port=port))
        daemon = await DaemonProc.start(config, tmp_path / name, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        await daemon.stop()
