"""Agent state reported by daemons (SyncAgentStates) and stored per node."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.validation import MAX_AGENTS_PER_SYNC, check_agent_id
from opsfleet.manager.domain import Agent, AgentState
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.store.base import Store

AGENT_STATUSES = frozenset({"running", "stopped", "starting", "stopping", "error", "failed", "backoff"})


class AgentService:
    def __init__(self, store: Store, nodes: NodeService, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._nodes = nodes
        self._clock = clock

    async def sync_states(self, node_id: str, states: Sequence[AgentState]) -> None:
        """Store a full snapshot of the node's agents; agents missing from it become ``removed``."""
        await self._nodes.ensure_known(node_id)
        if len(states) > MAX_AGENTS_PER_SYNC:
            raise InvalidArgument(f"too many agent states: {len(states)} > {MAX_AGENTS_PER_SYNC}")
        seen: set[str] = set()
        for state in states:
            check_agent_id(state.agent_id)
            if state.agent_id in seen:
                raise InvalidArgument(f"agent {state.agent_id!r} appears twice")
            seen.add(state.agent_id)
            if len(state.status) > 32 or len(state.type) > 64 or len(state.version) > 64:
                raise InvalidArgument(f"agent {state.agent_id!r}: status/type/version too long")
        await self._store.sync_agents(node_id, states, self._clock())
        self._nodes.seen(node_id)

    async def list_stored(self, node_id: str) -> list[Agent]:
        await self._nodes.get(node_id)
        return await self._store.list_agents(node_id)
