"""Fixtures for supervisor tests with real child processes (the programs in tests/programs)."""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.log_lines import parse_line
from opsfleet.daemon.supervisor import AgentSpec, Supervisor, merge_agents
from tests.helpers import assert_eventually

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"

Eventually = Callable[..., Awaitable[Any]]

FAST_DEFAULTS: dict[str, Any] = {
    "binary_path": sys.executable,
    "start_seconds": 0.1,
    "stop_timeout": 3.0,
    "metrics_interval": 0.1,
    "restart": {"backoff_base": 0.05, "backoff_max": 0.1, "stable_after": 60},
    "health_check": {"interval": 0.1, "probe_timeout": 1.0, "failure_threshold": 2},
}


@pytest.fixture
def eventually() -> Eventually:
    return functools.partial(assert_eventually, timeout=15.0, interval=0.02)


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A port that was free a moment ago (for agents that must be told their port)."""

    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port

    return pick


@pytest.fixture
def program() -> Callable[..., AgentSpec]:
    """``program("a", "crash.py", "--code", "3", restart={...})``: a Python test program as an agent."""

    def build(agent_id: str, script: str, *args: str, **overrides: Any) -> AgentSpec:
        entry = {"id": agent_id, "args": ["-u", str(PROGRAMS / script), *args], **overrides}
        return merge_agents(FAST_DEFAULTS, [entry])[0]

    return build


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Supervisor]]]:
    """Start real Supervisors (state in ``tmp_path``); every one is stopped at teardown."""
    started: list[Supervisor] = []

    async def start(*specs: AgentSpec, **kwargs: Any) -> Supervisor:
        sup = Supervisor(specs, state_dir=tmp_path / "state", log_dir=tmp_path / "logs", **kwargs)
        await sup.start()
        started.append(sup)
        return sup

    yield start
    for sup in reversed(started):
        await sup.stop()


def texts(lines: list[str]) -> list[str]:
    """The text of stored log lines, without their time and stream."""
    return [parse_line(line).text for line in lines]
