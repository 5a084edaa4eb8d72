"""SQL implementation of FleetQueries: the REST API's paged node lists, metric aggregates, deletion.

Metric aggregates read the rollups kept by the metrics store (metrics_sql.py): a chart or a
summary costs one row per rollup bucket, not one per raw sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from opsfleet.common.errors import InvalidArgument
from opsfleet.manager.domain import MetricBucket, MetricSample, Node, NodeFilter, UsageStats
from opsfleet.manager.store.metrics_sql import RES_1H, RES_5M
from opsfleet.manager.store.schema import agents, node_config_states, node_events, nodes
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql import StoreModule, _row_to_node

RAW_STATS_SPAN = 6 * 3600
"""Usage statistics over at most this span read raw samples; longer ones read rollups."""
ROLLUP_5M_STATS_SPAN = 7 * 86400

USAGE_KEY = "usage_percent"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
            for table in (agents, node_events, node_config_states):
                await conn.execute(table.delete().where(table.c.node_id == node_id))
            await self._store.metrics.delete_node(conn, node_id)
            result = await conn.execute(nodes.delete().where(nodes.c.node_id == node_id))
        return bool(result.rowcount)

    async def latest_sample(self, node_id: str, type_: str) -> MetricSample | None:
        return await self._store.metrics.latest(node_id, type_)

    async def bucketed_metrics(
        self, node_id: str, type_: str, start: int, end: int, bucket_seconds: int
    ) -> list[MetricBucket]:
        res = RES_1H if bucket_seconds % RES_1H == 0 else RES_5M
        if bucket_seconds % res:
            raise InvalidArgument(f"bucket_seconds {bucket_seconds} is not a multiple of {RES_5M}")
        rows = await self._store.metrics.averages(node_id, type_, res, start, end, bucket_seconds)
        return [MetricBucket(timestamp=b, values=values, samples=n) for b, values, n in rows]

    async def usage_stats(self, node_id: str, types: Sequence[str], start: int, end: int) -> list[UsageStats]:
        out = []
        for type_ in types:
            stats = await self._usage(node_id, type_, start, end)
            if stats is not None:
                out.append(stats)
        return out

    async def _usage(self, node_id: str, type_: str, start: int, end: int) -> UsageStats | None:
        metrics = self._store.metrics
        if end - start <= RAW_STATS_SPAN:
            samples = await metrics.query(node_id, type_, start, end)
            values = [v for s in samples if (v := s.values.get(USAGE_KEY)) is not None]
            if not values:
                return None
            return UsageStats(type_, min(values), max(values), sum(values) / len(values), len(values))
        res = RES_5M if end - start <= ROLLUP_5M_STATS_SPAN else RES_1H
        low = high = total = 0.0
        count = 0
        for _, rollup in await metrics.rollups(node_id, type_, res, start, end):
            stats = rollup.stats(USAGE_KEY)
            if stats is None:
                continue
            low = stats[0] if not count else min(low, stats[0])
            high = stats[1] if not count else max(high, stats[1])
            total += stats[2]
            count += stats[3]
        if not count:
            return None
        return UsageStats(type_, low, high, total / count, count)

    async def latest_usage(self, types: Sequence[str], since: int) -> list[tuple[str, str, int, float]]:
        return await self._store.metrics.latest_value(types, since, USAGE_KEY)
