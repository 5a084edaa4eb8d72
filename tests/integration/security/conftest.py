from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opsfleet.manager.app import ManagerApp
from tests.integration.daemon.conftest import apps  # noqa: F401 (in-process Managers and Daemons)
from tests.integration.security.support import ADMIN_PASSWORD, Fleet


@pytest.fixture
async def start_fleet(
    tmp_path: Path, manager_config: Callable[..., Any]
) -> AsyncIterator[Callable[..., Any]]:
    """Start Managers with the fleet CA (grpc.tls.mode auto) on demand; all are stopped at teardown."""
    started: list[Fleet] = []

    async def start(database_url: str | None = None, **overrides: Any) -> Fleet:
        overrides.setdefault("auth__admin_password", ADMIN_PASSWORD)
        overrides.setdefault("grpc__tls__mode", "auto")
        url = database_url or f"sqlite:///{tmp_path / 'secure.db'}"
        app = ManagerApp(manager_config(url, **overrides))
        await app.start()
        fleet = Fleet(app, tmp_path / f"nodes{len(started)}")
        started.append(fleet)
        return fleet

    yield start
    for fleet in reversed(started):
        await fleet.close()
        await fleet.app.stop()


@pytest.fixture
async def fleet(start_fleet: Callable[..., Any]) -> Fleet:
    """A secure Manager on SQLite."""
    f: Fleet = await start_fleet()
    return f


@pytest.fixture
async def fleet_db(database_url: str, start_fleet: Callable[..., Any]) -> Fleet:
    """A secure Manager on each database backend."""
    f: Fleet = await start_fleet(database_url)
    return f
