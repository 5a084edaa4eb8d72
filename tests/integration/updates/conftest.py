from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import load_daemon_config
from opsfleet.proto import daemon_pb2_grpc
from tests.integration.updates.support import Signer, agent_spec

UPDATE_DAEMON = {
    "manager.address": "127.0.0.1:1",  # no Manager: these tests talk to the daemon directly
    "manager.reconnect_interval": 5.0,
    "daemon.grpc_host": "127.0.0.1",
    "daemon.grpc_port": 0,
    "collectors.cpu.enabled": False,
    "collectors.memory.enabled": False,
    "collectors.disk.enabled": False,
    "collectors.network.enabled": False,
    "update.grace_period": 1.5,
    "update.rollback_timeout": 10.0,
}


@pytest.fixture
def signer() -> Signer:
    return Signer.new()


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
async def daemon_factory(
    tmp_path: Path, marker_dir: Path, signer: Signer
) -> AsyncIterator[Callable[..., Any]]:
    running: list[DaemonApp] = []

    async def start(**overrides: Any) -> DaemonApp:
        settings = {
            **UPDATE_DAEMON,
            "daemon.work_dir": str(tmp_path / "daemon"),
            "agents": [agent_spec("web", marker_dir)],
            "update.trusted_keys": [signer.keys.public_b64],
            **overrides,
        }
        app = DaemonApp(load_daemon_config(None, {}, settings))
        await app.start()
        running.append(app)
        return app

    yield start
    for app in reversed(running):
        await app.stop()


@pytest.fixture
async def stub_for() -> AsyncIterator[Callable[[DaemonApp], daemon_pb2_grpc.DaemonServiceStub]]:
    channels: list[grpc.aio.Channel] = []

    def make(app: DaemonApp) -> daemon_pb2_grpc.DaemonServiceStub:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
        channels.append(channel)
        return daemon_pb2_grpc.DaemonServiceStub(channel)

    yield make
    for channel in channels:
        await channel.close()
