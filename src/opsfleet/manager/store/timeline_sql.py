"""SQL side of the fleet-wide views: node events (the timeline) and agents across nodes."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from opsfleet.manager.domain import (
    AGENT_REMOVED,
    AgentFilter,
    EventFilter,
    EventKind,
    FleetAgent,
    NodeEvent,
)
from opsfleet.manager.store.schema import agents, node_events, nodes
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule, agent_from_row

MAX_DETAIL = 255


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqlTimeline(StoreModule):
    """Usable once the SqlStore has started."""

    @shielded
    async def add_events(self, events: Sequence[NodeEvent]) -> None:
        if not events:
            return
        rows = [
            {"node_id": e.node_id, "kind": e.kind.value, "at": e.at, "detail": e.detail[:MAX_DETAIL]}
            for e in events
        ]
        async with self._store.write_tx(changes_rows=True) as conn:
            await conn.execute(node_events.insert(), rows)

    @shielded
    async def page_events(
        self, flt: EventFilter, offset: int, limit: int
    ) -> tuple[list[tuple[NodeEvent, str]], int]:
        """Newest first, each with its node's hostname ("" for a deleted node)."""
        where: list[sa.ColumnElement[bool]] = []
        if flt.node_id:
            where.append(node_events.c.node_id == flt.node_id)
        if flt.kinds:
            where.append(node_events.c.kind.in_(flt.kinds))
        if flt.since:
            where.append(node_events.c.at >= flt.since)
        joined = node_events.outerjoin(nodes, nodes.c.node_id == node_events.c.node_id)
        query = (
            sa.select(node_events, nodes.c.hostname)
            .select_from(joined)
            .where(*where)
            .order_by(node_events.c.at.desc(), node_events.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(node_events).where(*where)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(count)).scalar_one()
        return [
            (NodeEvent(r.node_id, EventKind(r.kind), r.at, r.detail), r.hostname or "") for r in rows
        ], int(total)

    @shielded
    async def page_agents(self, flt: AgentFilter, offset: int, limit: int) -> tuple[list[FleetAgent], int]:
        """Ordered by agent id, then hostname and node id."""
        where: list[sa.ColumnElement[bool]] = []
        if flt.agent_id:
            where.append(agents.c.agent_id == flt.agent_id)
        if flt.type:
            where.append(agents.c.type == flt.type)
        if flt.status:
            where.append(agents.c.status == flt.status)
        else:
            where.append(agents.c.status != AGENT_REMOVED)
        for key, value in flt.labels.items():
            where.append(nodes.c.labels[key].as_string() == value)
        if flt.text:
            pattern = _like(flt.text)
            where.append(
                sa.or_(
                    *(
                        sa.func.lower(col).like(pattern, escape="\\")
                        for col in (agents.c.agent_id, agents.c.node_id, nodes.c.hostname)
                    )
                )
            )
        joined = agents.join(nodes, nodes.c.node_id == agents.c.node_id)
        query = (
            sa.select(agents, nodes.c.hostname, nodes.c.status.label("node_status"), nodes.c.labels)
            .select_from(joined)
            .where(*where)
            .order_by(agents.c.agent_id, nodes.c.hostname, agents.c.node_id)
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(joined).where(*where)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(count)).scalar_one()
        return [
            FleetAgent(
                agent=agent_from_row(r),
                hostname=r.hostname,
                node_status=r.node_status,
                labels=dict(r.labels or {}),
            )
            for r in rows
        ], int(total)
