from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import load_daemon_config
from opsfleet.manager.app import ManagerApp

FAST_DAEMON = {
    "manager.heartbeat_interval": 1.0,
    "manager.reconnect_interval": 0.2,
    "manager.reconnect_max": 1.0,
    "manager.timeout": 3.0,
    "collectors.cpu.interval": 1.0,
    "collectors.memory.interval": 1.0,
    "collectors.disk.interval": 1.0,
    "collectors.network.interval": 1.0,
    "daemon.grpc_host": "127.0.0.1",
    "daemon.grpc_port": 0,
}


@pytest.fixture
async def apps(tmp_path: Path, manager_config: Callable[..., Any]) -> AsyncIterator[Any]:
    """Factory for in-process Managers and Daemons; everything still running is stopped at teardown."""

    class Apps:
        def __init__(self) -> None:
            self.running: list[Any] = []

        async def manager(
            self, database_url: str | None = None, port: int = 0, **overrides: Any
        ) -> ManagerApp:
            url = database_url or f"sqlite:///{tmp_path / 'manager.db'}"
            app = ManagerApp(manager_config(url, **{"grpc.port": port, **overrides}))
            await app.start()
            self.running.append(app)
            return app

        async def daemon(self, address: str, work_dir: Path | None = None, **overrides: Any) -> DaemonApp:
            settings = {
                **FAST_DAEMON,
                "manager.address": address,
                "daemon.work_dir": str(work_dir or tmp_path / "daemon"),
                **{k.replace("__", "."): v for k, v in overrides.items()},
            }
            app = DaemonApp(load_daemon_config(None, {}, settings))
            await app.start()
            self.running.append(app)
            return app

        async def stop(self, app: Any) -> None:
            await app.stop()
            if app in self.running:
                self.running.remove(app)

    holder = Apps()
    yield holder
    for app in reversed(holder.running):
        await app.stop()
