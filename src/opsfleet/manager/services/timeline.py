"""The node timeline: what happened to a node and its agents, newest first.

Registrations, enrollment and liveness are written by the store and the enrollment service.
This service adds the rest: agent state changes derived from the daemons' SyncAgentStates
snapshots (each compared with the node's previous snapshot kept in memory; the first
snapshot after a Manager start only sets the baseline), agent operations with their
operator, central-config apply states and update results. An agent change that follows an
operator's operation on it within :data:`ATTRIBUTION_WINDOW` names that operator.

Writing an event never fails the call that caused it: a store error is logged and dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.validation import check_node_id
from opsfleet.manager.domain import AGENT_REMOVED, AgentState, EventFilter, EventKind, NodeEvent
from opsfleet.manager.services.paging import Page, page_window

log = logging.getLogger(__name__)

ATTRIBUTION_WINDOW = 60.0
KINDS = tuple(k.value for k in EventKind)


class TimelineStore(Protocol):
    async def add_events(self, events: Sequence[NodeEvent]) -> None: ...

    async def page_events(
        self, flt: EventFilter, offset: int, limit: int
    ) -> tuple[list[tuple[NodeEvent, str]], int]:
        """Newest first, each with its node's hostname; (page, total)."""
        ...


@dataclass(frozen=True)
class _Request:
    username: str
    operation: str
    at: float


def make_event_filter(node_id: str, kinds: Sequence[str], since: float) -> EventFilter:
    """Validated filters; ``kinds`` items may hold several, comma-separated."""
    if node_id:
        check_node_id(node_id)
    wanted = tuple(k.strip() for item in kinds for k in item.split(",") if k.strip())
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}; got {', '.join(unknown)[:80]}")
    if since < 0:
        raise InvalidArgument("since must be epoch seconds >= 0")
    return EventFilter(node_id=node_id, kinds=wanted, since=since)


def _state_words(state: AgentState) -> str:
    return f"{state.status} (pid {state.pid})" if state.pid else state.status


def describe_changes(before: dict[str, AgentState], after: Sequence[AgentState]) -> list[tuple[str, str]]:
    """(agent_id, detail) for every agent whose state changed between two snapshots."""
    changes: list[tuple[str, str]] = []
    now = {s.agent_id: s for s in after}
    for agent_id, new in sorted(now.items()):
        old = before.get(agent_id)
        why = f": {new.reason}" if new.reason else ""
        if old is None or old.status == AGENT_REMOVED:
            changes.append((agent_id, f"agent {agent_id} added: {_state_words(new)}{why}"))
        elif old.status != new.status:
            changes.append((agent_id, f"agent {agent_id} {old.status} -> {_state_words(new)}{why}"))
        elif new.restart_count > old.restart_count:
            detail = f"agent {agent_id} restarted by the supervisor (restart {new.restart_count}"
            changes.append((agent_id, f"{detail}, pid {old.pid} -> {new.pid}){why}"))
        elif old.pid and new.pid and old.pid != new.pid:
            changes.append((agent_id, f"agent {agent_id} restarted: pid {old.pid} -> {new.pid}{why}"))
    for agent_id in sorted(set(before) - set(now)):
        if before[agent_id].status != AGENT_REMOVED:
            changes.append((agent_id, f"agent {agent_id} removed from the daemon's configuration"))
    return changes


class TimelineService:
    def __init__(self, store: TimelineStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._last: dict[str, dict[str, AgentState]] = {}
        self._requests: dict[tuple[str, str], _Request] = {}
        self.events_dropped = 0

    async def record(self, node_id: str, kind: EventKind, detail: str) -> None:
        await self._write([NodeEvent(node_id, kind, self._clock(), detail)])

    async def _write(self, events: list[NodeEvent]) -> None:
        if not events:
            return
        try:
            await self._store.add_events(events)
        except Exception:
            self.events_dropped += len(events)
            log.exception("could not store %d timeline event(s) of node %s", len(events), events[0].node_id)

    async def agents_synced(self, node_id: str, states: Sequence[AgentState]) -> None:
        """Compare with the node's previous snapshot; store an event per changed agent."""
        await self._write(self.changes(node_id, states))

    def changes(self, node_id: str, states: Sequence[AgentState]) -> list[NodeEvent]:
        """The events of a new snapshot (none for the first since start), which becomes the
        node's previous snapshot; for the caller to store with the snapshot itself."""
        before = self._last.get(node_id)
        self._last[node_id] = {s.agent_id: s for s in states}
        if before is None:
            return []
        now = self._clock()
        events = []
        for agent_id, change in describe_changes(before, states):
            request = self._requests.get((node_id, agent_id))
            by = ""
            if request is not None and now - request.at <= ATTRIBUTION_WINDOW:
                by = f" ({request.operation} by operator {request.username or '-'})"
            events.append(NodeEvent(node_id, EventKind.AGENT_STATE, now, change + by))
        return events

    def requested(self, node_id: str, agent_id: str, operation: str, username: str) -> None:
        """An operator asks for ``operation`` now: changes of the agent within
        :data:`ATTRIBUTION_WINDOW` name them (called before the daemon is asked, whose state
        sync may arrive before its answer)."""
        now = self._clock()
        for key in [k for k, r in self._requests.items() if now - r.at > ATTRIBUTION_WINDOW]:
            del self._requests[key]
        self._requests[(node_id, agent_id)] = _Request(username, operation, now)

    async def operation(
        self, node_id: str, agent_id: str, operation: str, username: str, success: bool, error: str
    ) -> None:
        """An operator's start/stop/restart and how it ended."""
        outcome = "ok" if success else f"failed: {error}"
        detail = f"{operation} of agent {agent_id} by operator {username or '-'}: {outcome}"
        await self.record(node_id, EventKind.OPERATION, detail)

    def forget(self, node_id: str) -> None:
        """The node was deleted or registered anew: its next snapshot sets a new baseline."""
        self._last.pop(node_id, None)

    async def page(self, flt: EventFilter, page: int, page_size: int) -> Page[tuple[NodeEvent, str]]:
        offset, limit = page_window(page, page_size)
        items, total = await self._store.page_events(flt, offset, limit)
        return Page(items, page, page_size, total)
