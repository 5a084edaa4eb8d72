"""Agent states, the transitions between them, and what the outside world sees of an agent.

::

    stopped ──start──▶ starting ──up for start_seconds──▶ running
       ▲                 │  ▲                                │
       │                 │  └──────── backoff ◀──exit────────┤
       │                 │              │ (too many restarts │
       │                 ▼              ▼  in retry_window)  │
       └──────────── stopping ◀──stop/restart/unhealthy──────┘     failed

Only :class:`~opsfleet.daemon.supervisor.process.AgentProcess` changes a state, through
its one ``_transition`` method, which checks :data:`TRANSITIONS`.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass


class AgentStatus(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    FAILED = "failed"

    @property
    def wire(self) -> str:
        """The status string of the wire protocol (running, stopped, starting, stopping, error)."""
        return _WIRE[self]


_WIRE = {
    AgentStatus.STOPPED: "stopped",
    AgentStatus.STARTING: "starting",
    AgentStatus.RUNNING: "running",
    AgentStatus.BACKOFF: "starting",
    AgentStatus.STOPPING: "stopping",
    AgentStatus.FAILED: "error",
}

_S = AgentStatus
TRANSITIONS: dict[AgentStatus, frozenset[AgentStatus]] = {
    _S.STOPPED: frozenset({_S.STARTING}),
    # Spawn failures and exits before start_seconds end a start attempt.
    _S.STARTING: frozenset({_S.RUNNING, _S.BACKOFF, _S.STOPPING, _S.STOPPED, _S.FAILED}),
    _S.RUNNING: frozenset({_S.STOPPING, _S.BACKOFF, _S.STOPPED, _S.FAILED}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.STOPPED, _S.FAILED}),
    # stopping -> starting is a requested restart; -> backoff/failed a restart after a failed check.
    _S.STOPPING: frozenset({_S.STOPPED, _S.STARTING, _S.BACKOFF, _S.FAILED}),
    _S.FAILED: frozenset({_S.STARTING, _S.STOPPED}),
}

# States in which a process of the agent exists.
PROCESS_STATES = frozenset({_S.STARTING, _S.RUNNING, _S.STOPPING})


class InvalidTransition(RuntimeError):
    """A bug: the state machine tried a move that :data:`TRANSITIONS` does not allow."""


def check_transition(old: AgentStatus, new: AgentStatus) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"{old.value} -> {new.value} is not a valid agent transition")


def describe_exit(returncode: int) -> str:
    """``exit code 3`` or ``killed by signal SIGKILL`` (asyncio reports signals as -N)."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by signal {name}"


@dataclass(frozen=True)
class AgentView:
    """A snapshot of one agent, as ListAgents and the daemon's state sync report it."""

    id: str
    type: str
    name: str
    version: str
    state: AgentStatus
    pid: int
    start_time: int
    restart_count: int
    last_heartbeat: int
    last_exit_reason: str
    reason: str = ""  # why the agent entered its state (the last transition's reason)

    @property
    def status(self) -> str:
        """The wire status string."""
        return self.state.wire
