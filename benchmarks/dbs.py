"""Scratch databases for benchmarks: a fresh SQLite file, or a PostgreSQL database that is
dropped and re-created (so its name must contain ``bench``), and read-only checks on them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from benchmarks.procs import BenchError
from opsfleet.manager.config import DatabaseSection, resolve_database_url
from opsfleet.manager.store.schema import node_events, nodes
from opsfleet.manager.store.sql import SqlStore

ADMIN_DATABASE = "postgres"


@dataclass(frozen=True)
class NodeHealth:
    nodes: int
    online: int
    offline: int
    offline_events: int
    reregistered_events: int


class ScratchDatabase:
    """``create()`` before use, ``drop()`` after (idempotent; a kept SQLite file stays)."""

    def __init__(self, workdir: Path, postgres_url: str | None = None, *, keep: bool = False) -> None:
        self._workdir = workdir
        self._keep = keep
        if postgres_url:
            parts = urlsplit(postgres_url)
            self.name = parts.path.lstrip("/")
            if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
                raise BenchError(f"--database-url must be postgresql://...; got {postgres_url!r}")
            if "bench" not in self.name:
                raise BenchError(
                    f"refusing to drop and re-create database {self.name!r}: "
                    "a scratch database's name must contain 'bench'"
                )
            self.url = postgres_url
            self._admin_url = urlunsplit(parts._replace(scheme="postgresql", path=f"/{ADMIN_DATABASE}"))
            self.kind = "postgresql"
        else:
            self.path = workdir / "bench.db"
            self.url = f"sqlite:///{self.path}"
            self.kind = "sqlite"

    @property
    def async_url(self) -> str:
        """The SQLAlchemy URL the Manager would use for :attr:`url`."""
        return resolve_database_url(DatabaseSection(url=self.url), self._workdir)

    def create(self) -> None:
        if self.kind == "sqlite":
            self._workdir.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        asyncio.run(
            self._admin(
                f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', f'CREATE DATABASE "{self.name}"'
            )
        )

    def drop(self) -> None:
        if self._keep:
            return
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    async def _admin(self, *statements: str) -> None:
        import asyncpg  # type: ignore[import-untyped]

        try:
            conn = await asyncpg.connect(self._admin_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise BenchError(f"cannot reach PostgreSQL at {self._admin_url}: {exc}") from exc
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    def server_version(self) -> str:
        """``SHOW server_version`` of the PostgreSQL server ("" for SQLite or when unreachable)."""
        if self.kind == "sqlite":
            return ""
        try:
            return asyncio.run(self._server_version())
        except BenchError:
            return ""

    async def _server_version(self) -> str:
        import asyncpg

        try:
            conn = await asyncpg.connect(self._admin_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise BenchError(f"cannot reach PostgreSQL at {self._admin_url}: {exc}") from exc
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    def size_bytes(self) -> int:
        if self.kind == "sqlite":
            return sum(
                Path(f"{self.path}{s}").stat().st_size
                for s in ("", "-wal")
                if Path(f"{self.path}{s}").exists()
            )
        return asyncio.run(self._pg_size())

    async def _pg_size(self) -> int:
        store = SqlStore(self.async_url)
        await store.start()
        try:
            async with store.engine.connect() as conn:
                return int(
                    (await conn.execute(sa.text("SELECT pg_database_size(current_database())"))).scalar_one()
                )
        finally:
            await store.close()

    def node_health(self) -> NodeHealth:
        """Node statuses and offline / re-registered events, read straight from the tables."""
        return asyncio.run(self._node_health())

    async def _node_health(self) -> NodeHealth:
        store = SqlStore(self.async_url)
        await store.start()
        try:
            async with store.engine.connect() as conn:
                by_status: dict[str, int] = dict(
                    (
                        await conn.execute(
                            sa.select(nodes.c.status, sa.func.count()).group_by(nodes.c.status)
                        )
                    ).all()
                )
                by_kind: dict[str, int] = dict(
                    (
                        await conn.execute(
                            sa.select(node_events.c.kind, sa.func.count()).group_by(node_events.c.kind)
                        )
                    ).all()
                )
        finally:
            await store.close()
        return NodeHealth(
            nodes=sum(by_status.values()),
            online=by_status.get("online", 0),
            offline=by_status.get("offline", 0),
            offline_events=by_kind.get("offline", 0),
            reregistered_events=by_kind.get("re-registered", 0),
        )
