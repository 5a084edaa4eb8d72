"""Raw samples in point rows and blocks (metric_raw.py): reads of their union, the fold,
deletion and counts. Functions on the caller's connection (and transaction).

The fold (:func:`fold`) runs in the rollup job's write transaction: it deletes the point
rows of the range with ``DELETE ... RETURNING`` and builds the blocks from the rows that
statement returned (and the blocks already stored), never from an earlier read, so a sample
merged into a point row after the job read it is folded too. On PostgreSQL the ``DELETE``
waits for a metrics transaction that holds one of the rows and then returns its committed
version; on SQLite the write transaction holds the database's only write lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from opsfleet.manager.store.metric_codec import block_points, point_entries
from opsfleet.manager.store.metric_raw import build_blocks, union, union_into, unpack_blocks
from opsfleet.manager.store.metric_rollup_mark import RES_5M, bucket_of
from opsfleet.manager.store.schema import BlobType, metric_blocks, metric_points, node_keys

Points = dict[tuple[int, int], bytes]
"""Points by (node key, timestamp)."""

_CHUNK = 500


def _chunks(keys: Sequence[int]) -> Iterable[list[int]]:
    for i in range(0, len(keys), _CHUNK):
        yield list(keys[i : i + _CHUNK])


async def read(conn: AsyncConnection, node_keys: Sequence[int], lo: int, hi: int) -> Points:
    """The points of these nodes with a timestamp in [lo, hi): the union of both tables (one
    statement per 500 nodes: one round trip, one snapshot)."""
    p, b = metric_points, metric_blocks
    rows: list[tuple[tuple[int, int], bytes]] = []
    blocks: list[tuple[int, int, bytes]] = []
    for keys in _chunks(sorted(set(node_keys))):
        query = sa.union_all(
            sa.select(sa.literal(False).label("block"), p.c.node_key, p.c.ts, p.c.data).where(
                p.c.node_key.in_(keys), p.c.ts >= lo, p.c.ts < hi
            ),
            sa.select(sa.literal(True), b.c.node_key, b.c.bucket, b.c.data).where(
                b.c.node_key.in_(keys), b.c.bucket >= bucket_of(lo), b.c.bucket < hi
            ),
        )
        for block, k, ts, data in (await conn.execute(query)).all():
            if block:
                blocks.append((int(k), int(ts), bytes(data)))
            else:
                rows.append(((int(k), int(ts)), bytes(data)))
    out: Points = {}
    for k, bucket, data in blocks:
        points = block_points(bucket, data)
        if lo <= bucket and bucket + RES_5M <= hi:
            out.update(((k, ts), point) for ts, point in points)
        else:
            out.update(((k, ts), point) for ts, point in points if lo <= ts < hi)
    return union_into(out, rows) if rows else out


async def read_buckets(conn: AsyncConnection, node_key: int, buckets: Iterable[int]) -> Points:
    """The points of one node in these 5-minute buckets."""
    wanted = sorted(set(buckets))
    if not wanted:
        return {}
    p, b = metric_points, metric_blocks
    blocks: list[tuple[int, int, bytes]] = []
    for part in _chunks(wanted):
        query = sa.select(b.c.bucket, b.c.data).where(b.c.node_key == node_key, b.c.bucket.in_(part))
        blocks += [(node_key, int(bucket), bytes(d)) for bucket, d in (await conn.execute(query)).all()]
    query = sa.select(p.c.ts, p.c.data).where(
        p.c.node_key == node_key, p.c.ts >= wanted[0], p.c.ts < wanted[-1] + RES_5M
    )
    chosen = set(wanted)
    rows = [
        ((node_key, int(ts)), bytes(d))
        for ts, d in (await conn.execute(query)).all()
        if bucket_of(int(ts)) in chosen
    ]
    return union(unpack_blocks(blocks), rows)


async def fold(
    conn: AsyncConnection, node_keys: Sequence[int], lo: int, hi: int, *, pg: bool
) -> tuple[Points, int]:
    """Inside the caller's write transaction: move the point rows of these nodes in [lo, hi)
    (whole 5-minute buckets) into their blocks. The points of the blocks written (every
    sample of their buckets), and the point rows deleted."""
    p, b = metric_points, metric_blocks
    deleted: list[tuple[tuple[int, int], bytes]] = []
    for keys in _chunks(sorted(set(node_keys))):
        stmt = (
            p.delete()
            .where(p.c.node_key.in_(keys), p.c.ts >= lo, p.c.ts < hi)
            .returning(p.c.node_key, p.c.ts, p.c.data)
        )
        deleted += [((int(k), int(ts)), bytes(d)) for k, ts, d in (await conn.execute(stmt)).all()]
    if not deleted:
        return {}, 0
    # The blocks already stored for the buckets the rows belong to:
    # one query per 500 nodes that had rows, not one per node.
    stored: list[tuple[int, int, bytes]] = []
    for keys in _chunks(sorted({node_key for (node_key, _), _ in deleted})):
        query = sa.select(b.c.node_key, b.c.bucket, b.c.data).where(
            b.c.node_key.in_(keys), b.c.bucket >= bucket_of(lo), b.c.bucket < hi
        )
        if pg:
            query = query.with_for_update()
        found = (await conn.execute(query)).all()
        stored += [(int(k), int(bucket), bytes(d)) for k, bucket, d in found]
    points = union(unpack_blocks(stored), deleted)
    await _write_blocks(conn, points, pg=pg)
    return points, len(deleted)


async def _write_blocks(conn: AsyncConnection, points: Points, *, pg: bool) -> None:
    marks = "$1, $2, $3, $4" if pg else "?, ?, ?, ?"
    sql = (
        f"INSERT INTO metric_blocks (node_key, bucket, n, data) VALUES ({marks}) "
        "ON CONFLICT (node_key, bucket) DO UPDATE SET n = excluded.n, data = excluded.data"
    )
    await conn.exec_driver_sql(sql, build_blocks(points))


async def delete_before(conn: AsyncConnection, node_key: int, cutoff: int) -> int:
    """Delete one node's samples before ``cutoff`` (a 5-minute bucket start); how many."""
    p, b = metric_points, metric_blocks
    deleted = 0
    for table, column in ((p, p.c.ts), (b, b.c.bucket)):
        stmt = table.delete().where(table.c.node_key == node_key, column < cutoff).returning(table.c.n)
        deleted += sum(int(n) for (n,) in (await conn.execute(stmt)).all())
    return deleted


async def count(conn: AsyncConnection, node_key: int | None = None) -> int:
    """Samples stored (of one node): those of both tables, a sample in both counted once.
    One statement (one snapshot): a fold committed meanwhile cannot count a sample twice."""
    p, b = metric_points, metric_blocks

    def of(table: sa.Table) -> Any:
        return sa.true() if node_key is None else table.c.node_key == node_key

    nothing = sa.cast(sa.null(), sa.BigInteger)
    no_data = sa.cast(sa.null(), BlobType)
    sums = [
        sa.select(sa.literal(0).label("part"), sa.func.coalesce(sa.func.sum(t.c.n), 0))
        .add_columns(nothing, no_data, nothing, no_data)
        .where(of(t))
        for t in (p, b)
    ]
    # Point rows of folded buckets (a late or resent sample the job has not folded yet).
    both = (
        sa.select(sa.literal(1), sa.literal(0), p.c.ts, p.c.data, b.c.bucket, b.c.data)
        .select_from(p.join(b, sa.and_(b.c.node_key == p.c.node_key, b.c.bucket == p.c.ts - p.c.ts % RES_5M)))
        .where(of(p))
    )
    total = 0
    for part, n, ts, data, bucket, block in (await conn.execute(sa.union_all(*sums, both))).all():
        if part == 0:
            total += int(n)
            continue
        folded = dict(block_points(int(bucket), bytes(block))).get(int(ts))
        if folded is not None:
            have = {type_key for type_key, _ in point_entries(folded)}
            total -= sum(1 for type_key, _ in point_entries(bytes(data)) if type_key in have)
    return total


async def oldest(conn: AsyncConnection, since: int) -> int | None:
    """The start of the oldest 5-minute bucket with raw samples at or after ``since``'s
    bucket (an index probe per node and table)."""
    found: list[int] = []
    for table, name in ((metric_points, "ts"), (metric_blocks, "bucket")):
        t = table.alias()
        col = t.c[name]
        per_node = sa.select(sa.func.min(col)).where(
            t.c.node_key == node_keys.c.node_key, col >= bucket_of(since)
        )
        value = (await conn.execute(sa.select(sa.func.min(per_node.scalar_subquery())))).scalar()
        if value is not None:
            found.append(bucket_of(int(value)))
    return min(found) if found else None
