"""Plain data of the Manager's domain: no I/O, no gRPC, no SQL."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal


class NodeStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class EventKind(enum.StrEnum):
    REGISTERED = "registered"
    REREGISTERED = "re-registered"
    ONLINE = "online"
    OFFLINE = "offline"
    ENROLLED = "enrolled"
    CLONE_SUSPECTED = "clone-suspected"
    AGENT_STATE = "agent-state"  # an agent's state changed (detail: agent, from -> to, why)
    OPERATION = "operation"  # an operator started/stopped/restarted an agent
    CONFIG = "config"  # a central config's apply state on the node (applying/applied/failed)
    UPDATE = "update"  # a pushed update's outcome on the node


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
    restart_count: int = 0  # opsfleet daemons only (AgentState.restart_count)
    reason: str = ""  # why the agent is in its state (opsfleet daemons only; not stored)


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
    restart_count: int = 0


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one metrics report: samples stored and non-finite values dropped."""

    accepted: int
    dropped_values: int


@dataclass(frozen=True)
class LiveAgent:
    """An agent as the daemon reports it right now (ListAgents)."""

    agent_id: str
    type: str
    version: str
    status: str
    pid: int
    start_time: int
    restart_count: int
    last_heartbeat: int


@dataclass(frozen=True)
class ResourcePoint:
    timestamp: int
    cpu: float
    memory_rss: int
    memory_vms: int
    disk_read_bytes: int
    disk_write_bytes: int
    open_files: int


class Operation(enum.StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"


@dataclass(frozen=True)
class OperationRecord:
    """One agent operation requested through the Manager, with who asked and how it ended."""

    id: int
    node_id: str
    agent_id: str
    operation: str
    username: str
    requested_at: float
    finished_at: float
    success: bool
    error: str


class Role(enum.StrEnum):
    """What a REST user may do: admins everything, operators also operate agents, viewers only read."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True)
class User:
    """A REST API user. ``token_version`` grows whenever the user's tokens must stop working."""

    id: int
    username: str
    role: Role
    disabled: bool
    token_version: int
    created_at: float
    updated_at: float
    last_login_at: float | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One mutating REST request: who, what, on which target, how it ended, from where."""

    id: int
    at: float
    username: str
    action: str
    target: str
    result: str
    status: int
    code: int
    source_ip: str
    detail: str = ""


@dataclass(frozen=True)
class AgentFilter:
    """Fleet-wide agent list filters; empty fields match everything. ``labels`` select nodes
    (all must match); ``text`` is a case-insensitive substring of agent id, node id or hostname.
    Removed agents are listed only when ``status`` asks for them."""

    agent_id: str = ""
    type: str = ""
    status: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class FleetAgent:
    """An agent as stored, with the node it runs on."""

    agent: Agent
    hostname: str
    node_status: str
    labels: dict[str, str]


@dataclass(frozen=True)
class EventFilter:
    """Fleet-wide event filters: one node, some kinds, not before ``since`` (epoch seconds)."""

    node_id: str = ""
    kinds: tuple[str, ...] = ()
    since: float = 0.0


@dataclass(frozen=True)
class NodeFilter:
    """Node list filters: status, labels that must all match, text in id/hostname/ip, and
    ``ref``: how an operator names a node (its id, a prefix of its id, or its hostname)."""

    status: NodeStatus | None = None
    labels: dict[str, str] = field(default_factory=dict)
    text: str = ""
    ref: str = ""


@dataclass(frozen=True)
class MetricBucket:
    """Averages of every value key over one time bucket starting at ``timestamp``."""

    timestamp: int
    values: dict[str, float]
    samples: int


@dataclass(frozen=True)
class UsageStats:
    """min/max/avg of ``usage_percent`` of one metric type over a window."""

    type: str
    min: float | None
    max: float | None
    avg: float | None
    samples: int


ConfigStateName = Literal["pending", "applying", "applied", "failed"]
CONFIG_STATES: tuple[str, ...] = ("applying", "applied", "failed")


@dataclass(frozen=True)
class PolicyRevision:
    """One immutable revision of a policy; ``document`` is its canonical JSON."""

    name: str
    revision: int
    hash: str
    document: str
    author: str
    created_at: float


@dataclass(frozen=True)
class PolicyRow:
    """A policy as stored: its current revision, whether deleted, whether its rollout is halted."""

    name: str
    current: PolicyRevision
    deleted: bool
    rollout_paused: bool
    updated_at: float


@dataclass(frozen=True)
class NodeConfigState:
    """What a daemon last reported about applying the central config with ``config_hash``."""

    node_id: str
    config_hash: str
    state: str
    error: str
    updated_at: float


@dataclass(frozen=True)
class Artifact:
    """An uploaded update package: ``component`` is ``daemon`` or ``agent:<id>``; ``signature``
    is the base64 Ed25519 signature of ``component``/``version``/``sha256`` (empty: unsigned)."""

    id: int
    component: str
    version: str
    filename: str
    size: int
    sha256: str
    signature: str
    signed_by_manager: bool
    created_at: float
    created_by: str


@dataclass(frozen=True)
class UpdateOutcome:
    """A daemon's latest update of one component (GetUpdateStatus); ``finished_at`` 0 while it runs."""

    component: str
    version: str
    state: str
    message: str
    previous_version: str
    finished_at: int


class RolloutState(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    CANCELLED = "cancelled"
    DONE = "done"


class RolloutNodeState(enum.Enum):
    PENDING = "pending"
    UPDATING = "updating"
    DONE = "done"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


@dataclass(frozen=True)
class RolloutNode:
    rollout_id: int
    node_id: str
    position: int
    canary: bool
    state: RolloutNodeState
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class Rollout:
    """Moving the nodes matched by ``selector`` to ``version`` of ``component``, in batches.

    ``max_parallel`` is ``N`` or ``P%`` (of the nodes); ``canary`` nodes go first, alone;
    the rollout halts when failed + rolled-back nodes pass ``pause_on_failure`` percent.
    """

    id: int
    component: str
    version: str
    artifact_id: int
    selector: dict[str, str]
    max_parallel: str
    canary: int
    pause_on_failure: float
    state: RolloutState
    message: str
    created_by: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class EnrollmentToken:
    """An enrollment token as stored: its secret is kept only as a SHA-256 hash."""

    id: str
    created_by: str
    created_at: float
    expires_at: float
    max_uses: int
    uses: int
    labels: dict[str, str]
    revoked_at: float | None = None

    def state(self, now: float) -> str:
        """``active``, ``revoked``, ``expired`` or ``used-up``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.uses >= self.max_uses:
            return "used-up"
        return "active"


@dataclass(frozen=True)
class NodeIdentity:
    """One certificate issued to a node (enrollment or renewal)."""

    node_id: str
    serial: str
    not_after: float
    enrolled_at: float
    token_id: str = ""
    hostname: str = ""
    boot_id: str = ""
    revoked_at: float | None = None
    key_sha256: str | None = None  # SHA-256 (hex) of the certified public key; None before 0008
