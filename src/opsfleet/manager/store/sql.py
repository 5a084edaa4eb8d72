"""The SQL Store: SQLAlchemy 2 asyncio over SQLite (WAL, aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from opsfleet.common.errors import DatabaseUnavailable, Unavailable
from opsfleet.manager.domain import (
    AGENT_REMOVED,
    Agent,
    AgentState,
    EventKind,
    MetricSample,
    Node,
    NodeEvent,
    NodeRegistration,
    NodeStatus,
    OperationRecord,
)
from opsfleet.manager.store import sqlite_driver
from opsfleet.manager.store.metric_rollups_sql import SqlRollupJob
from opsfleet.manager.store.metrics_sql import DEFAULT_GRACE, SqlMetrics
from opsfleet.manager.store.schema import (
    agent_operations,
    agents,
    node_events,
    nodes,
    settings,
)
from opsfleet.manager.store.shield import ShieldedWork, shielded
from opsfleet.manager.store.sql_base import StoreModule
from opsfleet.manager.store.writes import ReadyProbe, WriteHealth

__all__ = ["SqlStore", "StoreModule"]  # StoreModule: for the store modules that import it from here

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Heartbeat flush: one driver-level executemany (thousands of rows a second in a large fleet).
_TOUCH_SQLITE = "UPDATE nodes SET last_seen_at = ? WHERE node_id = ? AND last_seen_at < ?"
_TOUCH_PG = "UPDATE nodes SET last_seen_at = $1 WHERE node_id = $2 AND last_seen_at < $3"
_MIGRATION_LOCK_ID = 0x0F5F1EE7
DEFAULT_LOCK_TIMEOUT = 3.0
LOCKED_RETRY_AFTER = 2.0
_PROBE_KEY = "write_probe"


_NODE_UPDATABLE = (
    "hostname",
    "ip",
    "os",
    "arch",
    "labels",
    "daemon_version",
    "agent_version",
    "daemon_address",
    "status",
    "last_seen_at",
)


def _node_values(reg: NodeRegistration, now: float) -> dict[str, Any]:
    return {
        "node_id": reg.node_id,
        "hostname": reg.hostname,
        "ip": reg.ip,
        "os": reg.os,
        "arch": reg.arch,
        "labels": reg.labels,
        "daemon_version": reg.daemon_version,
        "agent_version": reg.agent_version,
        "daemon_address": reg.daemon_address,
        "status": NodeStatus.ONLINE.value,
        "registered_at": now,
        "last_seen_at": now,
    }


def _row_to_node(row: sa.Row[Any]) -> Node:
    m = row._mapping
    return Node(
        node_id=m["node_id"],
        hostname=m["hostname"],
        ip=m["ip"],
        os=m["os"],
        arch=m["arch"],
        labels=dict(m["labels"] or {}),
        daemon_version=m["daemon_version"],
        agent_version=m["agent_version"],
        status=NodeStatus(m["status"]),
        registered_at=m["registered_at"],
        last_seen_at=m["last_seen_at"],
        daemon_address=m["daemon_address"],
    )


class SqlStore(ShieldedWork):
    """Store over one SQLAlchemy async engine. ``start()`` migrates; ``close()`` disposes.

    On SQLite a write waits at most ``lock_timeout`` for its turn among this process's
    writers, and at most ``lock_timeout`` for SQLite's write lock (held by another process),
    then fails with DatabaseUnavailable and a retry delay.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        rollup_grace: float = DEFAULT_GRACE,
    ) -> None:
        super().__init__()
        self.url = url
        self._pool_size = pool_size
        self._lock_timeout = lock_timeout
        self._engine: AsyncEngine | None = None
        self._agent_upsert_stmt: Any = None
        self._node_upsert_stmt: Any = None
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if url.startswith("sqlite") else None
        self.writes = WriteHealth()
        self._ready = ReadyProbe(self.writes, self._probe_write)
        self.metrics = SqlMetrics(self, grace=rollup_grace)
        self.rollup_job = SqlRollupJob(self)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise Unavailable("store is not started")
        return self._engine

    @contextlib.asynccontextmanager
    async def write_tx(self, *, changes_rows: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction. On SQLite, writers of this process take turns on an asyncio lock:
        SQLite has one writer at a time, and its busy handler would otherwise make the loser
        sleep in 1-100 ms steps (the source of tail latency under load).

        Failures go to ``self.writes`` (the /ready signal); a commit only when the caller says
        that its transaction changes rows (``changes_rows``): a transaction that reads, or
        writes nothing, commits even on a full disk or while another process holds the lock."""
        try:
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    yield conn
            else:
                async with self._write_turn(self._write_lock), self.engine.begin() as conn:
                    yield conn
        except BaseException as exc:
            self.writes.failed(exc)
            raise
        if changes_rows:
            self.writes.succeeded()

    @contextlib.asynccontextmanager
    async def _write_turn(self, lock: asyncio.Lock) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._lock_timeout):
                await lock.acquire()
        except TimeoutError as exc:
            raise DatabaseUnavailable(
                f"database is locked: no write turn within {self._lock_timeout:g}s",
                retry_after=LOCKED_RETRY_AFTER,
            ) from exc
        try:
            yield
        finally:
            lock.release()

    async def check_writable(self) -> None:
        """Return when writes work now, else raise DatabaseUnavailable (about a second at most)."""
        if self._engine is None:
            raise DatabaseUnavailable("the database is closed")
        await self._ready.check()

    @shielded
    async def _probe_write(self) -> None:
        # A real change (the time), so the commit has to write to the journal and the disk.
        stmt = self._insert(settings).values(key=_PROBE_KEY, value=repr(time.time()))
        stmt = stmt.on_conflict_do_update(
            index_elements=[settings.c.key], set_={"value": stmt.excluded.value}
        )
        async with self.write_tx(changes_rows=True) as conn:
            await conn.execute(stmt)

    async def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            db_path = self.url.split(":///", 1)[1] if ":///" in self.url else ""
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": self._lock_timeout}
            # The pool's rollback on return is one more hop to the connection's thread per
            # transaction, after the commit of every write. SQLAlchemy's Connection already
            # ends its transaction on close (rollback unless committed), so it is redundant.
            kwargs["pool_reset_on_return"] = None
        else:
            kwargs["pool_size"] = self._pool_size
            kwargs["max_overflow"] = self._pool_size
            kwargs["pool_pre_ping"] = True
        engine = create_async_engine(self.url, **kwargs)
        if engine.dialect.name == "sqlite":
            busy_ms = max(1, round(self._lock_timeout * 1000))
            sa.event.listen(engine.sync_engine, "connect", functools.partial(_sqlite_pragmas, busy_ms))
        self._engine = engine
        try:
            async with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
                await conn.run_sync(_upgrade)
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            self._engine = None
            raise Unavailable(f"cannot open database {self.safe_url}: {exc}") from exc
        log.info("database ready (%s)", self.safe_url)
        await self.metrics.refresh_mark()

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    async def close(self) -> None:
        await self.drain()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @shielded
    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise Unavailable(f"database unreachable ({type(getattr(exc, 'orig', exc)).__name__})") from exc

    def _agent_upsert(self) -> Any:
        """The agents upsert statement, built once (building ``excluded`` is not cheap)."""
        if self._agent_upsert_stmt is None:
            stmt = self._insert(agents)
            self._agent_upsert_stmt = stmt.on_conflict_do_update(
                index_elements=[agents.c.node_id, agents.c.agent_id],
                set_={
                    c: stmt.excluded[c]
                    for c in (
                        "type",
                        "version",
                        "status",
                        "pid",
                        "last_heartbeat",
                        "last_sync_at",
                        "restart_count",
                    )
                },
            )
        return self._agent_upsert_stmt

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @shielded
    async def upsert_nodes(self, regs: Sequence[NodeRegistration], now: float) -> list[bool]:
        if not regs:
            return []
        ids = list(dict.fromkeys(r.node_id for r in regs))
        latest = {r.node_id: r for r in regs}  # a node registering twice in one batch: the last wins
        async with self.write_tx(changes_rows=True) as conn:
            existing: set[str] = set()
            for chunk in _chunks(ids, 500):
                rows = await conn.execute(sa.select(nodes.c.node_id).where(nodes.c.node_id.in_(chunk)))
                existing.update(r[0] for r in rows)
            await conn.execute(self._node_upsert(), [_node_values(latest[i], now) for i in ids])
            created: list[bool] = []
            events = []
            for reg in regs:
                is_new = reg.node_id not in existing
                existing.add(reg.node_id)
                created.append(is_new)
                kind = EventKind.REGISTERED if is_new else EventKind.REREGISTERED
                events.append({"node_id": reg.node_id, "kind": kind.value, "at": now, "detail": ""})
            await conn.execute(node_events.insert(), events)
        return created

    def _node_upsert(self) -> Any:
        """The nodes upsert statement, built once; re-registration keeps ``registered_at``."""
        if self._node_upsert_stmt is None:
            stmt = self._insert(nodes)
            self._node_upsert_stmt = stmt.on_conflict_do_update(
                index_elements=[nodes.c.node_id],
                set_={c: stmt.excluded[c] for c in _NODE_UPDATABLE},
            )
        return self._node_upsert_stmt

    @shielded
    async def get_node(self, node_id: str) -> Node | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(nodes).where(nodes.c.node_id == node_id))).first()
        return _row_to_node(row) if row else None

    @shielded
    async def find_node_id(self, hostname: str, ip: str) -> str | None:
        query = (
            sa.select(nodes.c.node_id)
            .where(nodes.c.hostname == hostname, nodes.c.ip == ip)
            .order_by(nodes.c.registered_at)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    @shielded
    async def list_nodes(self) -> list[Node]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(nodes).order_by(nodes.c.node_id))).all()
        return [_row_to_node(r) for r in rows]

    @shielded
    async def touch_nodes(self, seen: Mapping[str, float]) -> tuple[list[str], list[str]]:
        if not seen:
            return [], []
        ids = list(seen)
        async with self.write_tx(changes_rows=True) as conn:
            status: dict[str, str] = {}
            for chunk in _chunks(ids, 500):
                rows = await conn.execute(
                    sa.select(nodes.c.node_id, nodes.c.status).where(nodes.c.node_id.in_(chunk))
                )
                status.update({r[0]: r[1] for r in rows})
            back = [node_id for node_id in ids if status.get(node_id) == NodeStatus.OFFLINE.value]
            missing = [node_id for node_id in ids if node_id not in status]
            for node_id in back:
                result = await conn.execute(
                    nodes.update()
                    .where(nodes.c.node_id == node_id, nodes.c.status == NodeStatus.OFFLINE.value)
                    .values(status=NodeStatus.ONLINE.value)
                )
                if result.rowcount:
                    await _add_event(conn, node_id, EventKind.ONLINE, seen[node_id], "heartbeat")
            present = [(v, k, v) for k, v in seen.items() if k in status]
            if present:
                sql = _TOUCH_PG if self.dialect == "postgresql" else _TOUCH_SQLITE
                await conn.exec_driver_sql(sql, present)
        return back, missing

    @shielded
    async def mark_offline(self, cutoff: float, now: float) -> list[str]:
        async with self.write_tx() as conn:
            rows = await conn.execute(
                sa.select(nodes.c.node_id).where(
                    nodes.c.status == NodeStatus.ONLINE.value, nodes.c.last_seen_at < cutoff
                )
            )
            gone: list[str] = []
            for (node_id,) in rows.all():
                result = await conn.execute(
                    nodes.update()
                    .where(
                        nodes.c.node_id == node_id,
                        nodes.c.status == NodeStatus.ONLINE.value,
                        nodes.c.last_seen_at < cutoff,
                    )
                    .values(status=NodeStatus.OFFLINE.value)
                )
                if result.rowcount:
                    await _add_event(conn, node_id, EventKind.OFFLINE, now, "no heartbeat")
                    gone.append(node_id)
        return gone

    @shielded
    async def list_events(self, node_id: str, limit: int = 100) -> list[NodeEvent]:
        query = (
            sa.select(node_events)
            .where(node_events.c.node_id == node_id)
            .order_by(node_events.c.at.desc(), node_events.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [NodeEvent(node_id=r.node_id, kind=EventKind(r.kind), at=r.at, detail=r.detail) for r in rows]

    async def insert_metrics(self, samples: Sequence[MetricSample]) -> None:
        await self.metrics.insert(samples)

    async def query_metrics(self, node_id: str, type_: str, start: int, end: int) -> list[MetricSample]:
        return await self.metrics.query(node_id, type_, start, end)

    async def count_metrics(self, node_id: str | None = None) -> int:
        return await self.metrics.count(node_id)

    async def delete_metrics_before(
        self, resolution: int, timestamp: int, after: int, max_nodes: int
    ) -> tuple[int, int | None]:
        return await self.metrics.delete_before(resolution, timestamp, after, max_nodes)

    @shielded
    async def sync_agents(
        self, node_id: str, states: Sequence[AgentState], now: float, events: Sequence[NodeEvent] = ()
    ) -> None:
        async with self.write_tx(changes_rows=bool(states) or bool(events)) as conn:
            if self.dialect == "sqlite":
                await _sync_agents_sqlite(conn, node_id, states, now, events)
                return
            if events:
                await conn.execute(
                    node_events.insert(),
                    [
                        {"node_id": e.node_id, "kind": e.kind.value, "at": e.at, "detail": e.detail[:255]}
                        for e in events
                    ],
                )
            if states:
                rows = [
                    {
                        "node_id": node_id,
                        "agent_id": s.agent_id,
                        "type": s.type,
                        "version": s.version,
                        "status": s.status,
                        "pid": s.pid,
                        "last_heartbeat": s.last_heartbeat,
                        "last_sync_at": now,
                        "restart_count": s.restart_count,
                    }
                    for s in states
                ]
                stmt = self._agent_upsert()
                await conn.execute(stmt, rows)
            present = [s.agent_id for s in states]
            removal = agents.update().where(agents.c.node_id == node_id, agents.c.status != AGENT_REMOVED)
            if present:
                removal = removal.where(agents.c.agent_id.not_in(present))
            await conn.execute(removal.values(status=AGENT_REMOVED, pid=0, last_sync_at=now))

    @shielded
    async def list_agents(self, node_id: str) -> list[Agent]:
        query = sa.select(agents).where(agents.c.node_id == node_id).order_by(agents.c.agent_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [agent_from_row(r) for r in rows]

    @shielded
    async def record_operation(self, record: OperationRecord) -> int:
        values = {
            "node_id": record.node_id,
            "agent_id": record.agent_id,
            "operation": record.operation,
            "username": record.username,
            "requested_at": record.requested_at,
            "finished_at": record.finished_at,
            "success": record.success,
            "error": record.error[:1024],
        }
        async with self.write_tx(changes_rows=True) as conn:
            result = await conn.execute(agent_operations.insert().values(**values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    @shielded
    async def list_operations(
        self, node_id: str, agent_id: str | None = None, limit: int = 100
    ) -> list[OperationRecord]:
        query = sa.select(agent_operations).where(agent_operations.c.node_id == node_id)
        if agent_id is not None:
            query = query.where(agent_operations.c.agent_id == agent_id)
        query = query.order_by(agent_operations.c.requested_at.desc(), agent_operations.c.id.desc()).limit(
            limit
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            OperationRecord(
                id=r.id,
                node_id=r.node_id,
                agent_id=r.agent_id,
                operation=r.operation,
                username=r.username,
                requested_at=r.requested_at,
                finished_at=r.finished_at,
                success=bool(r.success),
                error=r.error,
            )
            for r in rows
        ]


_AGENT_COLUMNS = "node_id, agent_id, type, version, status, pid, last_heartbeat, last_sync_at, restart_count"
_AGENT_UPSERT_TAIL = (
    " ON CONFLICT (node_id, agent_id) DO UPDATE SET type = excluded.type, version = excluded.version,"
    " status = excluded.status, pid = excluded.pid, last_heartbeat = excluded.last_heartbeat,"
    " last_sync_at = excluded.last_sync_at, restart_count = excluded.restart_count"
)


async def _sync_agents_sqlite(
    conn: AsyncConnection, node_id: str, states: Sequence[AgentState], now: float, events: Sequence[NodeEvent]
) -> None:
    """sync_agents on SQLite: the same three statements as the SQLAlchemy path, each one hop
    to the connection's thread (sqlite_driver.py); they run under the process's write lock."""
    if events:
        params: list[Any] = []
        for e in events:
            params += (e.node_id, e.kind.value, e.at, e.detail[:255])
        sql = "INSERT INTO node_events (node_id, kind, at, detail) VALUES " + sqlite_driver.marks(
            len(events), 4
        )
        await sqlite_driver.fetchall(conn, sql, params)
    if states:
        params = []
        for st in states:
            params += (
                node_id,
                st.agent_id,
                st.type,
                st.version,
                st.status,
                st.pid,
                st.last_heartbeat,
                now,
                st.restart_count,
            )
        sql = (
            f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES "
            + sqlite_driver.marks(len(states), 9)
            + _AGENT_UPSERT_TAIL
        )
        await sqlite_driver.fetchall(conn, sql, params)
    present = [st.agent_id for st in states]
    sql = "UPDATE agents SET status = ?, pid = 0, last_sync_at = ? WHERE node_id = ? AND status != ?"
    if present:
        sql += " AND agent_id NOT IN (" + ", ".join("?" * len(present)) + ")"
    await sqlite_driver.fetchall(conn, sql, [AGENT_REMOVED, now, node_id, AGENT_REMOVED, *present])


def agent_from_row(r: Any) -> Agent:
    """An Agent from a row with the ``agents`` table's columns."""
    return Agent(
        node_id=r.node_id,
        agent_id=r.agent_id,
        type=r.type,
        version=r.version,
        status=r.status,
        pid=r.pid,
        last_heartbeat=r.last_heartbeat,
        last_sync_at=r.last_sync_at,
        restart_count=r.restart_count,
    )


async def _add_event(
    conn: AsyncConnection, node_id: str, kind: EventKind, at: float, detail: str = ""
) -> None:
    await conn.execute(node_events.insert().values(node_id=node_id, kind=kind.value, at=at, detail=detail))


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _sqlite_pragmas(busy_ms: int, dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.close()


def _upgrade(sync_conn: sa.Connection) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
