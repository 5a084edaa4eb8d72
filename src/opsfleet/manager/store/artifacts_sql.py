"""SQL implementation of the ArtifactStore (metadata only: the files live in a directory)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from opsfleet.manager.domain import Artifact
from opsfleet.manager.store.schema import artifacts
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule
from opsfleet.manager.store.users_sql import dialect_insert


def _row(row: sa.Row[Any]) -> Artifact:
    m = row._mapping
    return Artifact(
        id=int(m["id"]),
        component=m["component"],
        version=m["version"],
        filename=m["filename"],
        size=int(m["size"]),
        sha256=m["sha256"],
        signature=m["signature"],
        signed_by_manager=bool(m["signed_by_manager"]),
        created_at=float(m["created_at"]),
        created_by=m["created_by"],
    )


class SqlArtifactStore(StoreModule):
    @shielded
    async def insert_artifact(self, artifact: Artifact) -> Artifact | None:
        """The stored artifact (with its id); None when the component already has that version."""
        values = {k: v for k, v in artifact.__dict__.items() if k != "id"}
        stmt = (
            dialect_insert(self._engine, artifacts)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[artifacts.c.component, artifacts.c.version])
            .returning(*artifacts.c)
        )
        async with self._store.write_tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _row(row) if row else None

    @shielded
    async def get_artifact(self, artifact_id: int) -> Artifact | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(artifacts).where(artifacts.c.id == artifact_id))).first()
        return _row(row) if row else None

    @shielded
    async def find_artifact(self, component: str, version: str) -> Artifact | None:
        query = sa.select(artifacts).where(artifacts.c.component == component, artifacts.c.version == version)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row(row) if row else None

    @shielded
    async def list_artifacts(self, component: str | None = None) -> list[Artifact]:
        query = sa.select(artifacts).order_by(artifacts.c.component, artifacts.c.id.desc())
        if component:
            query = query.where(artifacts.c.component == component)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row(r) for r in rows]

    @shielded
    async def delete_artifact(self, artifact_id: int) -> Artifact | None:
        stmt = artifacts.delete().where(artifacts.c.id == artifact_id).returning(*artifacts.c)
        async with self._store.write_tx() as conn:
            row = (await conn.execute(stmt)).first()
        return _row(row) if row else None

    @shielded
    async def count_by_sha256(self, sha256: str) -> int:
        query = sa.select(sa.func.count()).select_from(artifacts).where(artifacts.c.sha256 == sha256)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
