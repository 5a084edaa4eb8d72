"""SQL implementation of the PolicyStore, on the SqlStore's engine."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from opsfleet.manager.domain import NodeConfigState, PolicyRevision, PolicyRow
from opsfleet.manager.store.schema import node_config_states, policies, policy_revisions
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule
from opsfleet.manager.store.users_sql import dialect_insert


def _revision(row: sa.Row[Any]) -> PolicyRevision:
    m = row._mapping
    return PolicyRevision(
        name=m["name"],
        revision=int(m["revision"]),
        hash=m["hash"],
        document=m["document"],
        author=m["author"],
        created_at=float(m["created_at"]),
    )


class SqlPolicyStore(StoreModule):
    @shielded
    async def load_policies(self) -> list[PolicyRow]:
        r = policy_revisions
        query = (
            sa.select(
                policies.c.deleted,
                policies.c.rollout_paused,
                policies.c.updated_at,
                *r.c,
            )
            .join(r, sa.and_(r.c.name == policies.c.name, r.c.revision == policies.c.current_revision))
            .order_by(policies.c.name)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            PolicyRow(
                name=row.name,
                current=_revision(row),
                deleted=bool(row.deleted),
                rollout_paused=bool(row.rollout_paused),
                updated_at=float(row.updated_at),
            )
            for row in rows
        ]

    @shielded
    async def list_revisions(self, name: str) -> list[PolicyRevision]:
        r = policy_revisions
        query = sa.select(r).where(r.c.name == name).order_by(r.c.revision)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_revision(row) for row in rows]

    @shielded
    async def add_revision(self, name: str, document: str, hash_: str, author: str, now: float) -> int:
        r = policy_revisions
        async with self._store.write_tx() as conn:
            last = (
                await conn.execute(sa.select(sa.func.max(r.c.revision)).where(r.c.name == name))
            ).scalar_one()
            number = int(last or 0) + 1
            await conn.execute(
                r.insert().values(
                    name=name, revision=number, hash=hash_, document=document, author=author, created_at=now
                )
            )
            upsert = dialect_insert(self._engine, policies).values(
                name=name, current_revision=number, deleted=False, rollout_paused=False, updated_at=now
            )
            await conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[policies.c.name],
                    set_={
                        "current_revision": number,
                        "deleted": False,
                        "rollout_paused": False,
                        "updated_at": now,
                    },
                )
            )
        return number

    @shielded
    async def set_current(self, name: str, revision: int, now: float) -> None:
        async with self._store.write_tx() as conn:
            await conn.execute(
                policies.update()
                .where(policies.c.name == name)
                .values(current_revision=revision, deleted=False, rollout_paused=False, updated_at=now)
            )

    @shielded
    async def mark_deleted(self, name: str, now: float) -> bool:
        async with self._store.write_tx() as conn:
            result = await conn.execute(
                policies.update()
                .where(policies.c.name == name, policies.c.deleted == sa.false())
                .values(deleted=True, updated_at=now)
            )
        return bool(result.rowcount)

    @shielded
    async def set_paused(self, name: str, paused: bool, now: float) -> None:
        async with self._store.write_tx() as conn:
            await conn.execute(
                policies.update().where(policies.c.name == name).values(rollout_paused=paused, updated_at=now)
            )

    @shielded
    async def save_config_state(self, state: NodeConfigState) -> None:
        values = {
            "config_hash": state.config_hash,
            "state": state.state,
            "error": state.error[:1024],
            "updated_at": state.updated_at,
        }
        stmt = dialect_insert(self._engine, node_config_states).values(node_id=state.node_id, **values)
        async with self._store.write_tx() as conn:
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=[node_config_states.c.node_id], set_=values)
            )

    @shielded
    async def load_config_states(self) -> list[NodeConfigState]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(node_config_states))).all()
        return [
            NodeConfigState(
                node_id=row.node_id,
                config_hash=row.config_hash,
                state=row.state,
                error=row.error,
                updated_at=float(row.updated_at),
            )
            for row in rows
        ]
