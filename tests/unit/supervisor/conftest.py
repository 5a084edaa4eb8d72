"""Fixtures for the supervisor unit tests: polling instead of sleeping, specs, fake-backed supervisors."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from opsfleet.daemon.supervisor import AgentSpec, Supervisor, merge_agents
from opsfleet.daemon.supervisor.fakes import FakeSpawner
from tests.helpers import assert_eventually

Eventually = Callable[..., Awaitable[Any]]

# Small numbers so state changes take milliseconds, not seconds.
FAST_DEFAULTS: dict[str, Any] = {
    "binary_path": "/usr/bin/agent",
    "start_seconds": 0.05,
    "stop_timeout": 0.5,
    "metrics_interval": 0.1,
    "restart": {"backoff_base": 0.01, "backoff_max": 0.02, "stable_after": 60},
    "health_check": {"interval": 0.05, "probe_timeout": 0.5},
}


@pytest.fixture
def eventually() -> Eventually:
    return functools.partial(assert_eventually, timeout=10.0, interval=0.01)


@pytest.fixture
def make_spec() -> Callable[..., AgentSpec]:
    """``make_spec("a", restart={"max_retries": 1})``: FAST_DEFAULTS deep-merged under the overrides."""

    def build(agent_id: str, **overrides: Any) -> AgentSpec:
        return merge_agents(FAST_DEFAULTS, [{"id": agent_id, **overrides}])[0]

    return build


@pytest.fixture
async def fake_supervisor(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Supervisor, FakeSpawner]]]]:
    """Start Supervisors over a FakeSpawner on ``tmp_path``; all are stopped at teardown."""
    started: list[Supervisor] = []

    async def start(
        *specs: AgentSpec, spawner: FakeSpawner | None = None, **kwargs: Any
    ) -> tuple[Supervisor, FakeSpawner]:
        spawner = spawner or FakeSpawner()
        kwargs.setdefault("base_env", {})
        supervisor = Supervisor(
            specs, state_dir=tmp_path / "state", log_dir=tmp_path / "logs", spawner=spawner, **kwargs
        )
        await supervisor.start()
        started.append(supervisor)
        return supervisor, spawner

    yield start
    for supervisor in reversed(started):
        await supervisor.stop()
