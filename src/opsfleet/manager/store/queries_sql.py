"""SQL implementation of FleetQueries: the REST API's paged node lists, metric aggregates, deletion.

Aggregation runs in the database: buckets are ``(ts - start) / bucket`` in integer arithmetic
and every value key is averaged through the dialect's JSON table function (``json_each`` in
SQLite, ``jsonb_each_text`` in PostgreSQL), so at most buckets x keys rows come back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from opsfleet.manager.domain import MetricBucket, MetricSample, Node, NodeFilter, UsageStats
from opsfleet.manager.store.schema import agents, metric_samples, node_config_states, node_events, nodes
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule, _row_to_node

USAGE_KEY = "usage_percent"

_BUCKETS_SQLITE = sa.text(
    "SELECT (m.ts - :start) / :bucket AS b, e.key AS k, avg(e.value) AS v, count(*) AS n "
    'FROM metric_samples AS m, json_each(m."values") AS e '
    "WHERE m.node_id = :node_id AND m.type = :type AND m.ts >= :start AND m.ts <= :end "
    "AND e.type IN ('integer', 'real') "
    "GROUP BY b, e.key ORDER BY b"
)
_BUCKETS_POSTGRES = sa.text(
    "SELECT (m.ts - :start) / :bucket AS b, e.key AS k, avg(e.value::float8) AS v, count(*) AS n "
    'FROM metric_samples AS m CROSS JOIN LATERAL jsonb_each_text(m."values") AS e(key, value) '
    "WHERE m.node_id = :node_id AND m.type = :type AND m.ts >= :start AND m.ts <= :end "
    "AND jsonb_typeof(m.\"values\" -> e.key) = 'number' "
    "GROUP BY b, e.key ORDER BY b"
)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _usage() -> sa.ColumnElement[float]:
    usage: sa.ColumnElement[float] = metric_samples.c["values"][USAGE_KEY].as_float()
    return usage


class SqlFleetQueries(StoreModule):
    """Read-side queries over the SqlStore's engine; usable once the SqlStore has started."""

    @shielded
    async def page_nodes(self, flt: NodeFilter, offset: int, limit: int) -> tuple[list[Node], int]:
        where: list[sa.ColumnElement[bool]] = []
        if flt.status is not None:
            where.append(nodes.c.status == flt.status.value)
        for key, value in flt.labels.items():
            where.append(nodes.c.labels[key].as_string() == value)
        if flt.text:
            pattern = f"%{_like_escape(flt.text.lower())}%"
            where.append(
                sa.or_(
                    *(
                        sa.func.lower(col).like(pattern, escape="\\")
                        for col in (nodes.c.node_id, nodes.c.hostname, nodes.c.ip)
                    )
                )
            )
        if flt.ref:
            where.append(
                sa.or_(
                    # substr, not LIKE: a prefix of a case-sensitive id on SQLite and PostgreSQL alike
                    sa.func.substr(nodes.c.node_id, 1, len(flt.ref)) == flt.ref,
                    nodes.c.hostname == flt.ref,
                )
            )
        query = sa.select(nodes).where(*where).order_by(nodes.c.node_id).offset(offset).limit(limit)
        count = sa.select(sa.func.count()).select_from(nodes).where(*where)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(count)).scalar_one()
        return [_row_to_node(r) for r in rows], int(total)

    @shielded
    async def count_nodes_by_status(self) -> dict[str, int]:
        query = sa.select(nodes.c.status, sa.func.count()).group_by(nodes.c.status)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {str(status): int(n) for status, n in rows}

    @shielded
    async def delete_node(self, node_id: str) -> bool:
        async with self._store.write_tx() as conn:
            for table in (agents, node_events, metric_samples, node_config_states):
                await conn.execute(table.delete().where(table.c.node_id == node_id))
            result = await conn.execute(nodes.delete().where(nodes.c.node_id == node_id))
        return bool(result.rowcount)

    @shielded
    async def latest_sample(self, node_id: str, type_: str) -> MetricSample | None:
        query = (
            sa.select(metric_samples.c.ts, metric_samples.c["values"])
            .where(metric_samples.c.node_id == node_id, metric_samples.c.type == type_)
            .order_by(metric_samples.c.ts.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return MetricSample(node_id, type_, int(row[0]), dict(row[1])) if row else None

    @shielded
    async def bucketed_metrics(
        self, node_id: str, type_: str, start: int, end: int, bucket_seconds: int
    ) -> list[MetricBucket]:
        sql = _BUCKETS_POSTGRES if self._engine.dialect.name == "postgresql" else _BUCKETS_SQLITE
        params = {"node_id": node_id, "type": type_, "start": start, "end": end, "bucket": bucket_seconds}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sql, params)).all()
        buckets: dict[int, tuple[dict[str, float], int]] = {}
        for b, key, avg, n in rows:
            values, samples = buckets.setdefault(int(b), ({}, 0))
            values[str(key)] = float(avg)
            buckets[int(b)] = (values, max(samples, int(n)))
        return [
            MetricBucket(timestamp=start + b * bucket_seconds, values=values, samples=samples)
            for b, (values, samples) in sorted(buckets.items())
        ]

    @shielded
    async def usage_stats(self, node_id: str, types: Sequence[str], start: int, end: int) -> list[UsageStats]:
        usage = _usage()
        query = (
            sa.select(
                metric_samples.c.type,
                sa.func.min(usage),
                sa.func.max(usage),
                sa.func.avg(usage),
                sa.func.count(usage),
            )
            .where(
                metric_samples.c.node_id == node_id,
                metric_samples.c.type.in_(list(types)),
                metric_samples.c.ts >= start,
                metric_samples.c.ts <= end,
            )
            .group_by(metric_samples.c.type)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            UsageStats(
                type=str(t),
                min=None if lo is None else float(lo),
                max=None if hi is None else float(hi),
                avg=None if avg is None else float(avg),
                samples=int(n),
            )
            for t, lo, hi, avg, n in rows
        ]

    @shielded
    async def latest_usage(self, types: Sequence[str], since: int) -> list[tuple[str, str, int, float]]:
        ms = metric_samples
        newest = (
            sa.select(ms.c.node_id, ms.c.type, sa.func.max(ms.c.ts).label("ts"))
            .where(ms.c.type.in_(list(types)), ms.c.ts >= since)
            .group_by(ms.c.node_id, ms.c.type)
            .subquery()
        )
        usage = _usage()
        query = (
            sa.select(ms.c.node_id, ms.c.type, ms.c.ts, usage)
            .select_from(
                ms.join(
                    newest,
                    sa.and_(
                        ms.c.node_id == newest.c.node_id, ms.c.type == newest.c.type, ms.c.ts == newest.c.ts
                    ),
                )
            )
            .where(usage.is_not(None))
            .order_by(ms.c.node_id, ms.c.type)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(str(n), str(t), int(ts), float(u)) for n, t, ts, u in rows]
