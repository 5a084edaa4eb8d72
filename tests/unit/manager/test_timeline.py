"""The timeline service over an in-memory store: agent changes derived from snapshots,
operator attribution, validation of filters, and config-state events."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from opsfleet.common.errors import InvalidArgument
from opsfleet.manager.domain import AgentState, EventFilter, EventKind, NodeEvent
from opsfleet.manager.services.timeline import (
    ATTRIBUTION_WINDOW,
    TimelineService,
    describe_changes,
    make_event_filter,
)


class MemoryTimeline:
    """A TimelineStore in memory; ``fail`` makes writes raise."""

    def __init__(self) -> None:
        self.events: list[NodeEvent] = []
        self.fail = False

    async def add_events(self, events: Sequence[NodeEvent]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.events.extend(events)

    async def page_events(
        self, flt: EventFilter, offset: int, limit: int
    ) -> tuple[list[tuple[NodeEvent, str]], int]:
        found = [
            e
            for e in reversed(self.events)
            if (not flt.node_id or e.node_id == flt.node_id) and (not flt.kinds or e.kind.value in flt.kinds)
        ]
        return [(e, "") for e in found[offset : offset + limit]], len(found)


def st(agent_id: str, status: str, pid: int, restarts: int = 0, reason: str = "") -> AgentState:
    return AgentState(agent_id, "custom", "1", status, pid, 0, restarts, reason)


def test_describe_changes_covers_every_kind_of_change() -> None:
    before = {s.agent_id: s for s in [st("a", "running", 1), st("b", "running", 2), st("c", "running", 3)]}
    after = [
        st("a", "error", 0, reason="exit code 3"),
        st("b", "running", 5, restarts=1, reason="failed probe"),
        st("d", "starting", 9),
    ]
    assert describe_changes(before, after) == [
        ("a", "agent a running -> error: exit code 3"),
        ("b", "agent b restarted by the supervisor (restart 1, pid 2 -> 5): failed probe"),
        ("d", "agent d added: starting (pid 9)"),
        ("c", "agent c removed from the daemon's configuration"),
    ]
    assert describe_changes(before, list(before.values())) == []
    assert describe_changes({"a": st("a", "running", 1)}, [st("a", "running", 4)]) == [
        ("a", "agent a restarted: pid 1 -> 4")
    ]


async def test_first_snapshot_is_the_baseline_and_operators_are_named_within_the_window() -> None:
    now = [1000.0]
    store = MemoryTimeline()
    timeline = TimelineService(store, clock=lambda: now[0])
    await timeline.agents_synced("n1", [st("a", "running", 1)])
    assert store.events == []
    timeline.requested("n1", "a", "stop", "alice")
    await timeline.operation("n1", "a", "stop", "alice", True, "")
    await timeline.agents_synced("n1", [st("a", "stopped", 0, reason="stop requested")])
    now[0] += ATTRIBUTION_WINDOW + 1
    await timeline.agents_synced("n1", [st("a", "running", 7)])
    assert [(e.kind, e.detail) for e in store.events] == [
        (EventKind.OPERATION, "stop of agent a by operator alice: ok"),
        (EventKind.AGENT_STATE, "agent a running -> stopped: stop requested (stop by operator alice)"),
        (EventKind.AGENT_STATE, "agent a stopped -> running (pid 7)"),
    ]
    timeline.forget("n1")
    await timeline.agents_synced("n1", [st("a", "error", 0)])  # a new baseline again
    assert len(store.events) == 3


async def test_a_failing_store_never_fails_the_sync() -> None:
    store = MemoryTimeline()
    timeline = TimelineService(store)
    await timeline.agents_synced("n1", [st("a", "running", 1)])
    store.fail = True
    await timeline.agents_synced("n1", [st("a", "error", 0)])
    assert timeline.events_dropped == 1


async def test_filters_are_validated_and_paged() -> None:
    store = MemoryTimeline()
    timeline = TimelineService(store)
    for kind in (EventKind.REGISTERED, EventKind.OPERATION, EventKind.CONFIG):
        await timeline.record("n1", kind, kind.value)
    page = await timeline.page(make_event_filter("n1", ["operation,config"], 0), 1, 1)
    assert page.total == 2 and [e.kind for e, _ in page.items] == [EventKind.CONFIG]
    for bad in (("n1", ["nonsense"], 0.0), ("bad id!", [], 0.0), ("", [], -1.0)):
        with pytest.raises(InvalidArgument):
            make_event_filter(*bad)
