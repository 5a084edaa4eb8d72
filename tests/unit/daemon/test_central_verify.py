"""When the daemon accepts a central config: its new agents running, health-checked ones staying up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsfleet.common.daemon_schema import AgentSpec, DaemonConfig
from opsfleet.common.schema import parse
from opsfleet.daemon.central_config import CentralConfig
from opsfleet.daemon.supervisor.states import AgentStatus, AgentView


def view(agent_id: str, state: AgentStatus, restarts: int = 0, reason: str = "") -> AgentView:
    return AgentView(agent_id, "custom", agent_id, "", state, 1, 0, restarts, 0, reason)


class Script:
    """Agent views per poll: each call returns the next list (the last one repeats)."""

    def __init__(self, *polls: list[AgentView]) -> None:
        self.polls = list(polls)

    def __call__(self) -> list[AgentView]:
        return self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]


def central(tmp_path: Path, agents: Script, grace: float = 0.5) -> CentralConfig:
    async def apply(_: Any) -> None:
        return None

    return CentralConfig(
        node_id="n1",
        work_dir=tmp_path,
        local=DaemonConfig,
        apply=apply,
        agents=agents,
        channel=lambda: None,
        known_good=None,
        grace=grace,
    )


def spec(agent_id: str, **extra: Any) -> AgentSpec:
    return parse(AgentSpec, {"id": agent_id, "binary_path": "/bin/true", **extra})


async def test_running_agents_are_accepted(tmp_path: Path) -> None:
    script = Script([view("a", AgentStatus.STARTING)], [view("a", AgentStatus.RUNNING)])
    assert await central(tmp_path, script)._verify([spec("a")]) == ""


async def test_failed_or_late_agents_are_refused_with_the_reason(tmp_path: Path) -> None:
    failed = Script([view("a", AgentStatus.FAILED, reason="spawn failed: no such file")])
    assert (
        await central(tmp_path, failed)._verify([spec("a")]) == "agent a failed: spawn failed: no such file"
    )
    late = Script([view("a", AgentStatus.BACKOFF, reason="exit code 1")])
    problem = await central(tmp_path, late, grace=0.3)._verify([spec("a")])
    assert problem == "agents not running after 0.3s: a is backoff (exit code 1)"


async def test_health_checked_agent_must_stay_up_for_the_grace_period(tmp_path: Path) -> None:
    checked = spec("a", health_check={"tcp_port": 9})
    unhealthy = Script(
        [view("a", AgentStatus.RUNNING)],
        [view("a", AgentStatus.STOPPING, reason="health check failed")],
        [view("a", AgentStatus.STARTING, restarts=1, reason="health check failed")],
    )
    assert await central(tmp_path, unhealthy)._verify([checked]) == "agent a restarted: health check failed"
    healthy = Script([view("a", AgentStatus.RUNNING)])
    assert await central(tmp_path, healthy, grace=0.3)._verify([checked]) == ""
