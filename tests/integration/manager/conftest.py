from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from opsfleet.manager.app import ManagerApp
from tests.integration.manager.support import Running


@pytest.fixture
async def start_manager(manager_config: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Start Managers on demand; every one still running is stopped at teardown."""
    started: list[tuple[ManagerApp, grpc.aio.Channel]] = []

    async def start(database_url: str, **overrides: Any) -> Running:
        app = ManagerApp(manager_config(database_url, **overrides))
        await app.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
        started.append((app, channel))
        return Running(app, channel)

    yield start
    for app, channel in reversed(started):
        await channel.close()
        await app.stop()


@pytest.fixture
async def running(database_url: str, start_manager: Callable[..., Any]) -> Running:
    r: Running = await start_manager(database_url)
    return r
