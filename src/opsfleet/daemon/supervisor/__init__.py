"""Agent supervision: one state machine per agent process, health checks, resources, logs."""

from opsfleet.daemon.supervisor.config import AgentSpec, merge_agents
from opsfleet.daemon.supervisor.resources import ResourcePoint
from opsfleet.daemon.supervisor.spawner import Spawner, SubprocessSpawner
from opsfleet.daemon.supervisor.states import AgentStatus, AgentView
from opsfleet.daemon.supervisor.supervisor import Supervisor

__all__ = [
    "AgentSpec",
    "AgentStatus",
    "AgentView",
    "ResourcePoint",
    "Spawner",
    "SubprocessSpawner",
    "Supervisor",
    "merge_agents",
]
