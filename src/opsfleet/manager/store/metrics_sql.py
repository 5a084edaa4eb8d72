"""Metric storage of the SqlStore: compact sample rows, the latest sample, rollup reads.

Tables (schema.py): ``metric_points`` holds every sample of one node at one timestamp in one
row keyed ``(node_key, ts)`` (SQLite ``WITHOUT ROWID``; the PostgreSQL primary key index);
once the rollup job has finalized a 5-minute bucket it folds the bucket's rows of a node
into one ``metric_blocks`` row, and reads take the union of both (metric_raw.py);
``metric_rollups`` holds count/sum/min/max of every key per node, type, resolution (5 min,
1 h) and bucket; ``metric_latest`` the newest sample per node and type. Encodings are in
metric_codec.py, the key maps in metric_keys.py.

One ``insert`` is one transaction: the new points and (for the samples actually added, so a
sample sent twice counts once) the latest rows. Rollups are not computed or written there:
the elected replica's rollup job (metric_rollups_sql.py) finalizes closed buckets from the
raw points. Only a late sample (metric_rollup_mark.py) adds a row to ``metric_rollup_dirty``
in the same transaction, so the job recomputes its bucket.

Rollup reads take the stored rows up to the watermark and compute the rest (the open tail,
and any dirty bucket) from the raw samples of that one node. Retention deletes point rows
and blocks by key range, node by node (there is no index on time alone); raw samples of
buckets not final yet stay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from opsfleet.common.validation import check_value_keys
from opsfleet.manager.domain import MetricSample
from opsfleet.manager.store import metric_raw_sql as raw
from opsfleet.manager.store import sqlite_driver
from opsfleet.manager.store.metric_codec import (
    CodecError,
    Keys,
    Rollup,
    decode_one,
    decode_rollup,
    decode_sample,
    encode_point,
    encode_rollup,
    encode_sample,
    point_entries,
    point_entry,
)
from opsfleet.manager.store.metric_fold import Added, RollupKey, average_buckets, raw_rollups
from opsfleet.manager.store.metric_keys import MetricKeys
from opsfleet.manager.store.metric_rollup_mark import (
    MARK_KEY,
    RES_1H,
    RES_5M,
    RollupMark,
    bucket_of,
    is_late,
)
from opsfleet.manager.store.schema import (
    metric_blocks,
    metric_latest,
    metric_points,
    metric_rollup_dirty,
    metric_rollups,
    node_keys,
    settings,
)
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql_base import StoreModule

if TYPE_CHECKING:
    from opsfleet.manager.store.sql import SqlStore

__all__ = ["RES_1H", "RES_5M", "ROLLUP_RESOLUTIONS", "SqlMetrics"]

ROLLUP_RESOLUTIONS = (RES_5M, RES_1H)
RAW = 0
"""The resolution value naming raw samples (retention)."""
DEFAULT_GRACE = 120.0

log = logging.getLogger(__name__)

_CHUNK = 500
T = TypeVar("T")

_POINTS_PG = (
    "INSERT INTO metric_points (node_key, n, ts, data) "
    "SELECT * FROM unnest($1::int4[], $2::int2[], $3::int8[], $4::bytea[]) "
    "ON CONFLICT DO NOTHING RETURNING node_key, ts"
)
_LATEST_HEAD = "INSERT INTO metric_latest (node_key, type_key, ts, data) VALUES "
_LATEST_TAIL = (
    " ON CONFLICT (node_key, type_key) DO UPDATE SET ts = excluded.ts, data = excluded.data"
    " WHERE excluded.ts > metric_latest.ts"
)
_LATEST = _LATEST_HEAD + "({p})" + _LATEST_TAIL
ROLLUP_UPSERT = (
    "INSERT INTO metric_rollups (node_key, type_key, res, bucket, data) VALUES ({p}) "
    "ON CONFLICT (node_key, type_key, res, bucket) DO UPDATE SET data = excluded.data"
)
# DO UPDATE, not DO NOTHING: the update locks the row until this transaction commits, so the
# rollup job, which deletes the marks it takes before reading the raw points, waits for the
# late points to be committed (DO NOTHING would let it take the mark and miss them).
_DIRTY = (
    "INSERT INTO metric_rollup_dirty (node_key, bucket) VALUES ({p}) "
    "ON CONFLICT (node_key, bucket) DO UPDATE SET bucket = excluded.bucket"
)


class SqlMetrics(StoreModule):
    """Metric samples and rollup reads over the SqlStore's engine; usable once it has started.

    ``grace``: the rollup job finalizes buckets that ended this long ago (metric_rollup_mark).
    ``mark`` is this process's cached rollup watermark: the job sets it on the leader, and
    :meth:`refresh_mark` on the others.
    """

    def __init__(self, store: SqlStore, *, grace: float = DEFAULT_GRACE) -> None:
        super().__init__(store)
        self.keys = MetricKeys()
        self.grace = grace
        self.mark = RollupMark()
        self.clock: Callable[[], float] = time.time
        self.late_marked = 0
        """Dirty marks written by this process's metrics transactions (late samples)."""

    @property
    def _pg(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    def _marks(self, n: int) -> list[str]:
        """The driver's positional parameter markers."""
        return [f"${i}" for i in range(1, n + 1)] if self._pg else ["?"] * n

    def params(self, n: int) -> str:
        return ", ".join(self._marks(n))

    async def read_mark(self, conn: AsyncConnection, *, lock: bool = False) -> RollupMark | None:
        """The stored watermark (None before the job's first pass); ``lock``: FOR UPDATE."""
        query = sa.select(settings.c.value).where(settings.c.key == MARK_KEY)
        if lock and self._pg:
            query = query.with_for_update()
        value = (await conn.execute(query)).scalar()
        return None if value is None else RollupMark.decode(str(value))

    async def refresh_mark(self) -> RollupMark:
        """Read the stored watermark into the cache (followers, every rollup interval)."""
        async with self._engine.connect() as conn:
            mark = await self.read_mark(conn)
        if mark is not None and _progress(mark) >= _progress(self.mark):
            self.mark = mark
        return self.mark

    # -- writes -------------------------------------------------------------------------

    @shielded
    async def insert(self, samples: Sequence[MetricSample]) -> None:
        """Store samples; a sample with an existing (node, type, timestamp) is kept once."""
        if not samples:
            return
        groups: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
        for s in samples:
            group = groups.setdefault((s.node_id, s.timestamp), {})
            group.setdefault(s.type, s.values)
        await self._ensure_keys(groups)
        k = self.keys
        rows: list[tuple[int, int, int, bytes]] = []
        entries: dict[tuple[int, int], list[Added]] = {}
        for (node_id, ts), types in groups.items():
            node_key = k.nodes[node_id]
            mine: list[Added] = []
            for type_, values in types.items():
                keys = tuple(values)
                vals = list(values.values())
                blob = encode_sample(k.keysets.get(keys, 0), keys, vals)
                mine.append((node_key, ts, k.types[type_], keys, vals, blob))
            entries[(node_key, ts)] = mine
            rows.append((node_key, len(mine), ts, encode_point((a[2], a[5]) for a in mine)))
        rows.sort(key=lambda r: (r[0], r[2]))
        async with self._store.write_tx(changes_rows=True) as conn:
            inserted = await self._insert_points(conn, rows)
            added = [a for key in inserted for a in entries[key]]
            if len(inserted) < len(rows):
                clashes = [(r[0], r[2]) for r in rows if (r[0], r[2]) not in inserted]
                added += await self._merge_points(conn, clashes, entries)
            if added:
                await self._update_latest(conn, added)
                await self._mark_late(conn, added)

    async def mark_dirty(self, conn: AsyncConnection, buckets: Sequence[tuple[int, int]]) -> None:
        """Dirty marks for (node key, bucket) pairs (in the caller's transaction)."""
        if buckets:
            await conn.exec_driver_sql(_DIRTY.format(p=self.params(2)), list(buckets))

    async def _mark_late(self, conn: AsyncConnection, added: list[Added]) -> None:
        """Dirty marks for the added samples of buckets the job may have finalized. Decided
        last in the transaction, so the commit follows the clock reading closely."""
        now, grace, mark = self.clock(), self.grace, self.mark
        late = sorted({(a[0], bucket_of(a[1])) for a in added if is_late(a[1], now, grace, mark)})
        if late:
            await self.mark_dirty(conn, late)
            self.late_marked += len(late)

    async def _ensure_keys(self, groups: dict[tuple[str, int], dict[str, dict[str, float]]]) -> None:
        k = self.keys
        node_ids = {node_id for node_id, _ in groups}
        types = {t for g in groups.values() for t in g}
        keysets = {tuple(v) for g in groups.values() for v in g.values()}
        for keys in keysets:
            if keys not in k.keysets:
                # The service checks keys before queueing; the store does too, so a key the
                # database would keep is never one a log line or a JSON reader chokes on.
                check_value_keys("metric values", dict.fromkeys(keys))
        nodes, names, tuples = k.missing(node_ids, types, keysets)
        if not (nodes or names or tuples):
            return
        async with self._store.write_tx(changes_rows=True) as conn:
            await k.create(conn, self._store._insert, nodes, names, tuples)

    async def _insert_points(
        self, conn: AsyncConnection, rows: list[tuple[int, int, int, bytes]]
    ) -> set[tuple[int, int]]:
        """Insert the rows that are new; the keys of those inserted."""
        inserted: set[tuple[int, int]] = set()
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            result: Any
            if self._pg:
                columns = tuple(list(c) for c in zip(*chunk, strict=True))
                result = (await conn.exec_driver_sql(_POINTS_PG, columns)).all()
            else:
                sql = (
                    "INSERT INTO metric_points (node_key, n, ts, data) VALUES "
                    + sqlite_driver.marks(len(chunk), 4)
                    + " ON CONFLICT DO NOTHING RETURNING node_key, ts"
                )
                result = await sqlite_driver.fetchall(conn, sql, [v for r in chunk for v in r])
            inserted.update((int(row[0]), int(row[1])) for row in result)
        return inserted

    async def _merge_points(
        self,
        conn: AsyncConnection,
        clashes: list[tuple[int, int]],
        entries: dict[tuple[int, int], list[Added]],
    ) -> list[Added]:
        """Points that already exist get the types they lack (a report split or resent). A
        point the rollup job folded meanwhile (PostgreSQL: its ``DELETE`` committed after
        the insert saw the row) is inserted again, as a point of a folded bucket."""
        added: list[Added] = []
        m = self._marks(4)
        lock = " FOR UPDATE" if self._pg else ""
        select = f"SELECT data FROM metric_points WHERE node_key = {m[0]} AND ts = {m[1]}{lock}"
        update = f"UPDATE metric_points SET n = {m[0]}, data = {m[1]} WHERE node_key = {m[2]} AND ts = {m[3]}"
        for node_key, ts in clashes:
            data = None
            while data is None:
                data = (await conn.exec_driver_sql(select, (node_key, ts))).scalar()
                if data is None:
                    mine = entries[(node_key, ts)]
                    row = (node_key, len(mine), ts, encode_point((a[2], a[5]) for a in mine))
                    if await self._insert_points(conn, [row]):
                        added += mine
                        break
            if data is None:
                continue
            present = point_entries(bytes(data))
            have = {t for t, _ in present}
            new = [a for a in entries[(node_key, ts)] if a[2] not in have]
            if new:
                merged = present + [(a[2], a[5]) for a in new]
                await conn.exec_driver_sql(update, (len(merged), encode_point(merged), node_key, ts))
                added += new
        return added

    async def _update_latest(self, conn: AsyncConnection, added: list[Added]) -> None:
        newest: dict[tuple[int, int], Added] = {}
        for a in added:
            seen = newest.get((a[0], a[2]))
            if seen is None or a[1] > seen[1]:
                newest[(a[0], a[2])] = a
        rows = [(a[0], a[2], a[1], a[5]) for _, a in sorted(newest.items())]
        if self._pg:
            await conn.exec_driver_sql(_LATEST.format(p=self.params(4)), rows)
            return
        # One multi-row statement (one hop to SQLite's thread); the rows have distinct keys.
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            sql = _LATEST_HEAD + sqlite_driver.marks(len(chunk), 4) + _LATEST_TAIL
            await sqlite_driver.fetchall(conn, sql, [v for r in chunk for v in r])

    def encode_rollup(self, key: RollupKey, rollup: Rollup) -> bytes:
        keyset = self.keys.keysets.get(rollup.keys, 0)
        return encode_rollup(keyset, rollup, packed=key[2] == RES_5M)

    async def replace_rollups(self, conn: AsyncConnection, rollups: dict[RollupKey, Rollup]) -> None:
        rows = [(*key, self.encode_rollup(key, rollups[key])) for key in sorted(rollups)]
        for i in range(0, len(rows), _CHUNK):
            await conn.exec_driver_sql(ROLLUP_UPSERT.format(p=self.params(5)), rows[i : i + _CHUNK])

    async def decode(self, fn: Callable[[dict[int, Keys]], T], conn: AsyncConnection | None = None) -> T:
        """``fn(keys_of)``, reloading the keysets once when a blob names one made elsewhere."""
        try:
            return fn(self.keys.keys_of)
        except CodecError:
            if conn is None:
                async with self._engine.connect() as fresh:
                    await self.keys.load(fresh, keysets=True)
            else:
                await self.keys.load(conn, keysets=True)
            return fn(self.keys.keys_of)

    # -- reads --------------------------------------------------------------------------

    async def _keys(self, conn: AsyncConnection, node_id: str, type_: str) -> tuple[int, int] | None:
        node_key = await self.keys.node_key(conn, node_id)
        type_key = await self.keys.type_key(conn, type_)
        if node_key is None or type_key is None:
            return None
        return node_key, type_key

    @shielded
    async def query(self, node_id: str, type_: str, start: int, end: int) -> list[MetricSample]:
        async with self._engine.connect() as conn:
            keys = await self._keys(conn, node_id, type_)
            if keys is None:
                return []
            points = await raw.read(conn, [keys[0]], start, end + 1)
        found = [
            (ts, blob)
            for (_, ts), data in sorted(points.items())
            if (blob := point_entry(data, keys[1])) is not None
        ]

        def decode(lookup: dict[int, Keys]) -> list[MetricSample]:
            return [MetricSample(node_id, type_, ts, decode_sample(blob, lookup)) for ts, blob in found]

        return await self.decode(decode)

    @shielded
    async def count(self, node_id: str | None = None) -> int:
        async with self._engine.connect() as conn:
            if node_id is None:
                return await raw.count(conn)
            node_key = await self.keys.node_key(conn, node_id)
            return 0 if node_key is None else await raw.count(conn, node_key)

    @shielded
    async def latest(self, node_id: str, type_: str) -> MetricSample | None:
        async with self._engine.connect() as conn:
            keys = await self._keys(conn, node_id, type_)
            if keys is None:
                return None
            query = sa.select(metric_latest.c.ts, metric_latest.c.data).where(
                metric_latest.c.node_key == keys[0], metric_latest.c.type_key == keys[1]
            )
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        blob = bytes(row[1])
        values = await self.decode(lambda lookup: decode_sample(blob, lookup))
        return MetricSample(node_id, type_, int(row[0]), values)

    @shielded
    async def latest_value(
        self, types: Sequence[str], since: int, key: str
    ) -> list[tuple[str, str, int, float]]:
        """(node_id, type, timestamp, value of ``key``) of every node's newest sample since ``since``."""
        async with self._engine.connect() as conn:
            await self.keys.load(conn, types=True)
            type_keys = [self.keys.types[t] for t in types if t in self.keys.types]
            if not type_keys:
                return []
            query = (
                sa.select(
                    node_keys.c.node_id, metric_latest.c.type_key, metric_latest.c.ts, metric_latest.c.data
                )
                .select_from(metric_latest.join(node_keys, node_keys.c.node_key == metric_latest.c.node_key))
                .where(metric_latest.c.type_key.in_(type_keys), metric_latest.c.ts >= since)
                .order_by(node_keys.c.node_id, metric_latest.c.type_key)
            )
            rows = (await conn.execute(query)).all()
        names = self.keys.type_names

        def decode(lookup: dict[int, Keys]) -> list[tuple[str, str, int, float]]:
            out = []
            for node_id, type_key, ts, data in rows:
                value = decode_one(bytes(data), lookup, key)
                if value is not None:
                    out.append((str(node_id), names[int(type_key)], int(ts), value))
            return out

        return sorted(await self.decode(decode), key=lambda r: (r[0], r[1]))

    async def _rollup_rows(
        self, node_id: str, type_: str, res: int, start: int, end: int
    ) -> tuple[list[tuple[int, bytes]], dict[int, Rollup]]:
        """The stored rollup rows (bucket, data) that are final, and the other buckets of
        the range computed from the raw points: those past the watermark and any dirty one."""
        lo, hi = start - start % res, end - end % res + res
        async with self._engine.connect() as conn:
            keys = await self._keys(conn, node_id, type_)
            if keys is None:
                return [], {}
            node_key, type_key = keys
            mark = await self.read_mark(conn) or RollupMark()
            until = mark.stored_until(node_key)
            tail = max(lo, until - until % res)
            ranges = [(tail, hi)] if tail < hi else []
            if lo < tail:
                dirty = metric_rollup_dirty
                query = sa.select(dirty.c.bucket).where(
                    dirty.c.node_key == node_key, dirty.c.bucket >= lo, dirty.c.bucket < tail
                )
                fixes = sorted({int(b) - int(b) % res for b in (await conn.execute(query)).scalars()})
                ranges = [(b, b + res) for b in fixes] + ranges
            points: list[tuple[int, bytes]] = []
            for first, stop in ranges:
                found = await raw.read(conn, [node_key], first, stop)
                points += [
                    (ts, blob)
                    for (_, ts), data in sorted(found.items())
                    if (blob := point_entry(data, type_key)) is not None
                ]
            computed = await self.decode(lambda lookup: raw_rollups(points, res, lookup), conn)
            for first, stop in ranges:  # buckets computed empty stay out of the stored rows too
                computed.update({b: Rollup() for b in range(first, stop, res) if b not in computed})
            stored = await self._stored_rows(conn, node_key, type_key, res, lo, min(tail, hi))
        return [(b, d) for b, d in stored if b not in computed], {
            b: rollup for b, rollup in computed.items() if rollup.n and lo <= b < hi
        }

    async def _stored_rows(
        self, conn: AsyncConnection, node_key: int, type_key: int, res: int, lo: int, hi: int
    ) -> list[tuple[int, bytes]]:
        if hi <= lo:
            return []
        r = metric_rollups
        where = (
            r.c.node_key == node_key,
            r.c.type_key == type_key,
            r.c.res == res,
            r.c.bucket >= lo,
            r.c.bucket < hi,
        )
        if self._pg:
            # Two arrays in one row instead of a row object per bucket: a year of hourly
            # rollups is 8,760 rows, and their objects made garbage collection pauses. Both
            # aggregates see the rows in the same order; sorting them here (already in index
            # order: one linear pass) costs far less than two sorts in the aggregates.
            agg = sa.select(sa.func.array_agg(r.c.bucket), sa.func.array_agg(r.c.data)).where(*where)
            buckets, blobs = (await conn.execute(agg)).one()
            return sorted(zip(buckets or [], blobs or [], strict=True), key=itemgetter(0))
        query = sa.select(r.c.bucket, r.c.data).where(*where).order_by(r.c.bucket)
        return [(int(b), bytes(d)) for b, d in (await conn.execute(query)).all()]

    @shielded
    async def rollups(
        self, node_id: str, type_: str, res: int, start: int, end: int
    ) -> list[tuple[int, Rollup]]:
        """The rollups of ``res`` seconds whose bucket overlaps [start, end], oldest first."""
        rows, computed = await self._rollup_rows(node_id, type_, res, start, end)

        def decode(lookup: dict[int, Keys]) -> list[tuple[int, Rollup]]:
            out = {b: decode_rollup(d, lookup) for b, d in rows}
            out.update(computed)
            return sorted(out.items(), key=lambda item: item[0])

        return await self.decode(decode)

    @shielded
    async def averages(
        self, node_id: str, type_: str, res: int, start: int, end: int, bucket_seconds: int
    ) -> list[tuple[int, dict[str, float], int]]:
        """(bucket start, average per key, samples) over buckets of ``bucket_seconds`` (a
        multiple of ``res``, aligned on multiples of itself), from the ``res`` rollups."""
        rows, computed = await self._rollup_rows(node_id, type_, res, start, end)

        def fold(lookup: dict[int, Keys]) -> list[tuple[int, dict[str, float], int]]:
            return average_buckets(rows, computed.items(), bucket_seconds, lookup)

        return await self.decode(fold)

    # -- deletion -------------------------------------------------------------------------

    @shielded
    async def delete_before(
        self, res: int, cutoff: int, after: int, max_nodes: int
    ) -> tuple[int, int | None]:
        """Delete samples (``res`` 0) or rollups of ``res`` older than ``cutoff`` for up to
        ``max_nodes`` nodes with a key above ``after``, in one transaction. The samples or
        rollups deleted, and the cursor for the next call (None when every node was swept)."""
        async with self._store.write_tx() as conn:
            if res == RAW:
                cutoff = bucket_of(min(cutoff, await self._raw_kept_from(conn)))
            query = (
                sa.select(node_keys.c.node_key)
                .where(node_keys.c.node_key > after)
                .order_by(node_keys.c.node_key)
                .limit(max_nodes)
            )
            nodes = [int(k) for k in (await conn.execute(query)).scalars()]
            if not nodes:
                return 0, None
            deleted = 0
            if res == RAW:
                for node_key in nodes:
                    deleted += await raw.delete_before(conn, node_key, cutoff)
            else:
                await self.keys.load(conn, types=True)
                stmt = metric_rollups.delete().where(
                    metric_rollups.c.node_key == sa.bindparam("k"),
                    metric_rollups.c.type_key == sa.bindparam("t"),
                    metric_rollups.c.res == res,
                    metric_rollups.c.bucket < cutoff,
                )
                for node_key in nodes:
                    for type_key in self.keys.type_names:
                        result = await conn.execute(stmt, {"k": node_key, "t": type_key})
                        deleted += max(0, result.rowcount)
        return deleted, nodes[-1] if len(nodes) == max_nodes else None

    async def _raw_kept_from(self, conn: AsyncConnection) -> int:
        """Raw points from this time on stay: their buckets are not final yet (past the
        watermark, or dirty), and the rollup job still has to read them."""
        mark = await self.read_mark(conn)
        if mark is None:
            return 0
        oldest_dirty = (await conn.execute(sa.select(sa.func.min(metric_rollup_dirty.c.bucket)))).scalar()
        return min(mark.done, mark.done if oldest_dirty is None else int(oldest_dirty))

    async def delete_node(self, conn: AsyncConnection, node_id: str) -> None:
        """Inside the caller's transaction: every sample, rollup and latest row of the node."""
        node_key = (
            await conn.execute(sa.select(node_keys.c.node_key).where(node_keys.c.node_id == node_id))
        ).scalar()
        if node_key is None:
            return
        for table in (metric_points, metric_blocks, metric_rollups, metric_latest, metric_rollup_dirty):
            await conn.execute(table.delete().where(table.c.node_key == node_key))


def _progress(mark: RollupMark) -> tuple[int, int, int]:
    """Marks only move forward, in this order."""
    return mark.done, mark.end, mark.cursor
