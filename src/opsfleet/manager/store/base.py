"""The Store protocol the services depend on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from opsfleet.manager.domain import (
    Agent,
    AgentState,
    MetricSample,
    Node,
    NodeEvent,
    NodeRegistration,
    NodeStatus,
    OperationRecord,
)


class Store(Protocol):
    """Durable fleet state. Every method is a complete transaction."""

    async def start(self) -> None:
        """Connect and apply migrations."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def ping(self) -> None:
        """Raise Unavailable when the database cannot be reached."""

    async def upsert_node(self, reg: NodeRegistration, now: float) -> tuple[Node, bool]:
        """Insert or update a node (status online); True when it is new. Records the event."""

    async def get_node(self, node_id: str) -> Node | None: ...

    async def find_node_id(self, hostname: str, ip: str) -> str | None:
        """The id of a node registered with this hostname and ip, if any."""

    async def list_nodes(self) -> list[Node]: ...

    async def touch_nodes(self, seen: Mapping[str, float]) -> tuple[list[str], list[str]]:
        """Set last_seen_at; nodes that were offline become online (with an event).

        Returns the ids that came back online and the ids that no longer exist (deleted,
        possibly by another Manager replica)."""

    async def mark_offline(self, cutoff: float, now: float) -> list[str]:
        """Online nodes last seen before ``cutoff`` become offline (with an event); their ids."""

    async def list_events(self, node_id: str, limit: int = 100) -> list[NodeEvent]: ...

    async def insert_metrics(self, samples: Sequence[MetricSample]) -> None:
        """Store samples; a sample with an existing (node, type, timestamp) is kept once."""

    async def query_metrics(self, node_id: str, type_: str, start: int, end: int) -> list[MetricSample]:
        """Samples of one node and type with start <= timestamp <= end, oldest first."""

    async def count_metrics(self, node_id: str | None = None) -> int: ...

    async def delete_metrics_before(self, timestamp: int, limit: int) -> int:
        """Delete at most ``limit`` samples older than ``timestamp``; the number deleted."""

    async def sync_agents(self, node_id: str, states: Sequence[AgentState], now: float) -> None:
        """Upsert the node's agents from a full snapshot; agents missing from it are marked removed."""

    async def list_agents(self, node_id: str) -> list[Agent]: ...

    async def set_node_status(self, node_id: str, status: NodeStatus, now: float) -> None: ...

    async def record_operation(self, record: OperationRecord) -> int:
        """Append an agent operation to the history; its id."""

    async def list_operations(
        self, node_id: str, agent_id: str | None = None, limit: int = 100
    ) -> list[OperationRecord]:
        """Newest first."""
