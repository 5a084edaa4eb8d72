"""Agent state reported by daemons (SyncAgentStates) and stored per node.

Daemons send a full snapshot on every change and periodically. A snapshot equal to the
last one stored for the node (ignoring ``last_heartbeat``, which advances all the time)
within ``refresh_after`` seconds is not written again: the periodic syncs of a quiet fleet
cost no transaction, and a stored ``last_heartbeat`` is at most ``refresh_after`` old.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.validation import MAX_AGENTS_PER_SYNC, check_agent_fields
from opsfleet.manager.domain import Agent, AgentState
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.services.timeline import TimelineService
from opsfleet.manager.store.base import Store

DEFAULT_REFRESH_AFTER = 60.0


class AgentService:
    def __init__(
        self,
        store: Store,
        nodes: NodeService,
        *,
        refresh_after: float = DEFAULT_REFRESH_AFTER,
        clock: Callable[[], float] = time.time,
        timeline: TimelineService | None = None,
    ) -> None:
        self._store = store
        self._timeline = timeline
        self._nodes = nodes
        self._clock = clock
        self._refresh_after = refresh_after
        self._last: dict[str, tuple[tuple[tuple[str, str, str, str, int, int], ...], float]] = {}
        self.writes_skipped = 0
        self._sync_listeners: list[Callable[[str, Sequence[AgentState]], None]] = []
        nodes.add_forget_listener(self.forget)

    def add_sync_listener(self, listener: Callable[[str, Sequence[AgentState]], None]) -> None:
        """``listener(node_id, states)`` runs after every accepted snapshot (stored or not)."""
        self._sync_listeners.append(listener)

    async def sync_states(self, node_id: str, states: Sequence[AgentState]) -> None:
        """Store a full snapshot of the node's agents; agents missing from it become ``removed``."""
        await self._nodes.ensure_known(node_id)
        if len(states) > MAX_AGENTS_PER_SYNC:
            raise InvalidArgument(f"too many agent states: {len(states)} > {MAX_AGENTS_PER_SYNC}")
        seen: set[str] = set()
        for index, state in enumerate(states):
            check_agent_fields(index, state.agent_id, state.type, state.version, state.status)
            if state.agent_id in seen:
                raise InvalidArgument(f"states[{index}].agent_id {state.agent_id!r} appears twice")
            seen.add(state.agent_id)
        now = self._clock()
        shape = tuple(
            sorted((st.agent_id, st.type, st.version, st.status, st.pid, st.restart_count) for st in states)
        )
        last = self._last.get(node_id)
        changed = last is None or last[0] != shape
        # The timeline's events are written in the snapshot's transaction.
        events = self._timeline.changes(node_id, states) if self._timeline is not None and changed else []
        if not changed and last is not None and now - last[1] < self._refresh_after:
            self.writes_skipped += 1
        else:
            await self._store.sync_agents(node_id, states, now, events)
            self._last[node_id] = (shape, now)
        self._nodes.seen(node_id)
        for listener in self._sync_listeners:
            listener(node_id, states)

    def forget(self, node_id: str) -> None:
        """Drop the cached snapshot (the node was deleted or its agents changed elsewhere)."""
        self._last.pop(node_id, None)

    async def list_stored(self, node_id: str) -> list[Agent]:
        await self._nodes.get(node_id)
        return await self._store.list_agents(node_id)
