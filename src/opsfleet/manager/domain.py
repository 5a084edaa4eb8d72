"""Plain data of the Manager's domain: no I/O, no gRPC, no SQL."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class NodeStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class EventKind(enum.StrEnum):
    REGISTERED = "registered"
    REREGISTERED = "re-registered"
    ONLINE = "online"
    OFFLINE = "offline"


AGENT_REMOVED = "removed"


@dataclass(frozen=True)
class NodeRegistration:
    """What a daemon says about itself when it registers."""

    node_id: str
    hostname: str
    ip: str
    os: str
    arch: str
    labels: dict[str, str]
    daemon_version: str
    agent_version: str
    daemon_address: str = ""


@dataclass
class Node:
    node_id: str
    hostname: str
    ip: str
    os: str
    arch: str
    labels: dict[str, str]
    daemon_version: str
    agent_version: str
    status: NodeStatus
    registered_at: float
    last_seen_at: float
    daemon_address: str = ""


@dataclass(frozen=True)
class NodeEvent:
    node_id: str
    kind: EventKind
    at: float
    detail: str = ""


@dataclass(frozen=True)
class MetricSample:
    node_id: str
    type: str
    timestamp: int
    values: dict[str, float]


@dataclass(frozen=True)
class AgentState:
    agent_id: str
    type: str
    version: str
    status: str
    pid: int
    last_heartbeat: int


@dataclass
class Agent:
    node_id: str
    agent_id: str
    type: str
    version: str
    status: str
    pid: int
    last_heartbeat: int
    last_sync_at: float
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one metrics report: samples stored and non-finite values dropped."""

    accepted: int
    dropped_values: int
