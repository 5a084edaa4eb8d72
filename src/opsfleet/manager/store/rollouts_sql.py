"""SQL implementation of the RolloutStore: rollouts and the state of each of their nodes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from opsfleet.manager.domain import Rollout, RolloutNode, RolloutNodeState, RolloutState
from opsfleet.manager.store.schema import rollout_nodes, rollouts
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule


def _rollout(row: sa.Row[Any]) -> Rollout:
    m = row._mapping
    return Rollout(
        id=int(m["id"]),
        component=m["component"],
        version=m["version"],
        artifact_id=int(m["artifact_id"]),
        selector=json.loads(m["selector"]),
        max_parallel=m["max_parallel"],
        canary=int(m["canary"]),
        pause_on_failure=float(m["pause_on_failure"]),
        state=RolloutState(m["state"]),
        message=m["message"],
        created_by=m["created_by"],
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
    )


def _node(row: sa.Row[Any]) -> RolloutNode:
    m = row._mapping
    return RolloutNode(
        rollout_id=int(m["rollout_id"]),
        node_id=m["node_id"],
        position=int(m["position"]),
        canary=bool(m["canary"]),
        state=RolloutNodeState(m["state"]),
        message=m["message"],
        started_at=float(m["started_at"]),
        finished_at=float(m["finished_at"]),
    )


class SqlRolloutStore(StoreModule):
    @shielded
    async def insert_rollout(self, rollout: Rollout, nodes: Sequence[RolloutNode]) -> Rollout:
        values = {k: v for k, v in rollout.__dict__.items() if k != "id"}
        values["selector"] = json.dumps(rollout.selector, sort_keys=True)
        values["state"] = rollout.state.value
        async with self._store.write_tx() as conn:
            row = (await conn.execute(rollouts.insert().values(**values).returning(*rollouts.c))).one()
            stored = _rollout(row)
            if nodes:
                await conn.execute(
                    rollout_nodes.insert(),
                    [
                        {
                            **{k: v for k, v in n.__dict__.items()},
                            "rollout_id": stored.id,
                            "state": n.state.value,
                        }
                        for n in nodes
                    ],
                )
        return stored

    @shielded
    async def get_rollout(self, rollout_id: int) -> Rollout | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id))).first()
        return _rollout(row) if row else None

    @shielded
    async def list_rollouts(self, limit: int = 100) -> list[Rollout]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(rollouts).order_by(rollouts.c.id.desc()).limit(limit))).all()
        return [_rollout(r) for r in rows]

    @shielded
    async def rollout_nodes(self, rollout_id: int) -> list[RolloutNode]:
        query = (
            sa.select(rollout_nodes)
            .where(rollout_nodes.c.rollout_id == rollout_id)
            .order_by(rollout_nodes.c.position)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_node(r) for r in rows]

    @shielded
    async def set_rollout_state(
        self,
        rollout_id: int,
        state: RolloutState,
        message: str,
        now: float,
        *,
        only_from: Sequence[RolloutState] = (),
    ) -> Rollout | None:
        """The updated rollout; None when it does not exist or is not in one of ``only_from``."""
        stmt = rollouts.update().where(rollouts.c.id == rollout_id)
        if only_from:
            stmt = stmt.where(rollouts.c.state.in_([s.value for s in only_from]))
        stmt = stmt.values(state=state.value, message=message, updated_at=now).returning(*rollouts.c)
        async with self._store.write_tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _rollout(row) if row else None

    async def resume_halted(
        self, rollout_id: int, pause_on_failure: float, message: str, now: float
    ) -> Rollout | None:
        """Halted -> running with a new threshold, atomically; None unless it was halted."""
        stmt = (
            rollouts.update()
            .where(rollouts.c.id == rollout_id, rollouts.c.state == RolloutState.HALTED.value)
            .values(
                state=RolloutState.RUNNING.value,
                pause_on_failure=pause_on_failure,
                message=message,
                updated_at=now,
            )
            .returning(*rollouts.c)
        )
        async with self._store.write_tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _rollout(row) if row else None

    @shielded
    async def set_node_state(self, node: RolloutNode) -> None:
        stmt = (
            rollout_nodes.update()
            .where(rollout_nodes.c.rollout_id == node.rollout_id, rollout_nodes.c.node_id == node.node_id)
            .values(
                state=node.state.value,
                message=node.message,
                started_at=node.started_at,
                finished_at=node.finished_at,
            )
        )
        async with self._store.write_tx() as conn:
            await conn.execute(stmt)

    @shielded
    async def rollouts_in_state(self, state: RolloutState) -> list[Rollout]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(rollouts).where(rollouts.c.state == state.value))).all()
        return [_rollout(r) for r in rows]
