"""Metric storage of the SqlStore: compact sample rows, incremental rollups, the latest sample.

Tables (schema.py): ``metric_points`` holds every sample of one node at one timestamp in one
row keyed ``(node_key, ts)`` (SQLite ``WITHOUT ROWID``; the PostgreSQL primary key index);
``metric_rollups`` holds count/sum/min/max of every key per node, type, resolution (5 min,
1 h) and bucket; ``metric_latest`` the newest sample per node and type. Encodings are in
metric_codec.py, the key maps in metric_keys.py.

One ``insert`` is one transaction: the new points and (for the samples actually added, so a
sample sent twice counts once) the latest rows. The rollups stay off that path: once the
transaction has committed, the batch's rollups are merged into open buckets in memory
(metric_open.py), and the flusher merges those into the stored rollup rows every
``rollup_flush_interval`` in its own transaction (and once more at a clean stop). There, on
PostgreSQL, the touched rollup rows that exist are locked (``FOR UPDATE``) and new ones
inserted with ``ON CONFLICT DO NOTHING`` (a row another replica inserted meanwhile is then
read and merged), so replicas merge into them one after the other. Rollup reads add the open
buckets of this process to the stored rows.

Crash safety: the ``settings`` row ``metric_rollups_mark`` holds a watermark: every sample
older than it is in the stored rollups, except samples arriving later than ``LATE_MARGIN``
behind it, which lower it in their own transaction. A clean stop marks it ``clean``. At
start, when it is not clean (the last process was killed), the 5-minute rollups from
``mark - LATE_MARGIN`` on are rebuilt from the raw points (an indexed read per node key, a few
minutes of samples) and the hours from them; rebuilt rows replace the stored ones.
Retention deletes by key range, node by node (there is no index on time alone).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from operator import add
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.validation import check_value_keys
from opsfleet.manager.domain import MetricSample
from opsfleet.manager.store.metric_codec import (
    CodecError,
    Keys,
    Rollup,
    decode_one,
    decode_rollup,
    decode_rollup_sums,
    decode_sample,
    encode_point,
    encode_rollup,
    encode_sample,
    point_entries,
    point_entry,
)
from opsfleet.manager.store.metric_keys import MetricKeys
from opsfleet.manager.store.metric_open import OpenBuckets, RollupKey
from opsfleet.manager.store.schema import metric_latest, metric_points, metric_rollups, node_keys, settings
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql_base import StoreModule

if TYPE_CHECKING:
    from opsfleet.manager.store.sql import SqlStore

RES_5M = 300
RES_1H = 3600
ROLLUP_RESOLUTIONS = (RES_5M, RES_1H)
RAW = 0
"""The resolution value naming raw samples (retention)."""
LATE_MARGIN = 300
"""Seconds a sample may be older than the watermark without lowering it (report periods,
clock skew); the rebuild at start reads this much more."""
MARK_KEY = "metric_rollups_mark"
DEFAULT_FLUSH_INTERVAL = 10.0

log = logging.getLogger(__name__)

_CHUNK = 500
_FLUSH_CHUNK = 1000
T = TypeVar("T")

_POINTS_PG = (
    "INSERT INTO metric_points (node_key, n, ts, data) "
    "SELECT * FROM unnest($1::int4[], $2::int2[], $3::int8[], $4::bytea[]) "
    "ON CONFLICT DO NOTHING RETURNING node_key, ts"
)
_LATEST = (
    "INSERT INTO metric_latest (node_key, type_key, ts, data) VALUES ({p}) "
    "ON CONFLICT (node_key, type_key) DO UPDATE SET ts = excluded.ts, data = excluded.data "
    "WHERE excluded.ts > metric_latest.ts"
)
_ROLLUP_UPSERT = (
    "INSERT INTO metric_rollups (node_key, type_key, res, bucket, data) VALUES ({p}) "
    "ON CONFLICT (node_key, type_key, res, bucket) DO UPDATE SET data = excluded.data"
)
_ROLLUP_INSERT_PG = (
    "INSERT INTO metric_rollups (node_key, type_key, res, bucket, data) "
    "SELECT * FROM unnest($1::int4[], $2::int2[], $3::int2[], $4::int8[], $5::bytea[]) "
    "ON CONFLICT DO NOTHING RETURNING node_key, type_key, res, bucket"
)
_ROLLUP_LOCK_PG = (
    "SELECT r.node_key, r.type_key, r.res, r.bucket, r.data FROM metric_rollups AS r "
    "JOIN unnest($1::int4[], $2::int2[], $3::int2[], $4::int8[]) AS k(a, b, c, d) "
    "ON r.node_key = k.a AND r.type_key = k.b AND r.res = k.c AND r.bucket = k.d "
    "ORDER BY r.node_key, r.type_key, r.res, r.bucket FOR UPDATE OF r"
)


def rollup_lookup_sqlite(rows: int) -> str:
    """SQLite: the rollup rows of ``rows`` keys given as parameters. A join on VALUES, not
    ``(...) IN (VALUES ...)``, for which SQLite scans the whole table."""
    return (
        "SELECT r.node_key, r.type_key, r.res, r.bucket, r.data FROM (VALUES "
        + ", ".join(["(?, ?, ?, ?)"] * rows)
        + ") AS k JOIN metric_rollups AS r ON r.node_key = k.column1 AND r.type_key = k.column2 "
        "AND r.res = k.column3 AND r.bucket = k.column4"
    )


# One added sample: node key, timestamp, type key, value keys, values, encoded sample.
Added = tuple[int, int, int, Keys, list[float], bytes]


class SqlMetrics(StoreModule):
    """Metric samples and rollups over the SqlStore's engine; usable once it has started."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store)
        self.keys = MetricKeys()
        self._open = OpenBuckets(_partials)
        self._flush_lock = asyncio.Lock()
        self._mark: int | None = None
        self._tasks: TaskOwner | None = None
        self._stopping = asyncio.Event()

    @property
    def _pg(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    def _marks(self, n: int) -> list[str]:
        """The driver's positional parameter markers."""
        return [f"${i}" for i in range(1, n + 1)] if self._pg else ["?"] * n

    def _params(self, n: int) -> str:
        return ", ".join(self._marks(n))

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
        oldest = min(r[2] for r in rows)
        if self._mark is not None and oldest < self._mark - LATE_MARGIN:
            # Late samples (a daemon's backlog): the watermark goes down with them, and no
            # flush may raise it meanwhile.
            async with self._flush_lock:
                self._opened(await self._insert_tx(rows, entries, oldest))
                self._mark = oldest
        else:
            self._opened(await self._insert_tx(rows, entries, None))

    async def _insert_tx(
        self,
        rows: list[tuple[int, int, int, bytes]],
        entries: dict[tuple[int, int], list[Added]],
        lower_mark: int | None,
    ) -> list[Added]:
        """The transaction of one batch: points and latest rows; the samples added."""
        async with self._store.write_tx(changes_rows=True) as conn:
            inserted = await self._insert_points(conn, rows)
            added = [a for key in inserted for a in entries[key]]
            if len(inserted) < len(rows):
                clashes = [(r[0], r[2]) for r in rows if (r[0], r[2]) not in inserted]
                added += await self._merge_points(conn, clashes, entries)
            if added:
                await self._update_latest(conn, added)
            if lower_mark is not None:
                await self._write_mark(conn, lower_mark)
        return added

    def _opened(self, added: list[Added]) -> None:
        """After the commit (no await in between, so a flush sees the batch whole or not)."""
        if added:
            self._open.add_samples(added, max(a[1] for a in added))

    # -- rollup flushing ------------------------------------------------------------------

    async def start(self, flush_interval: float = DEFAULT_FLUSH_INTERVAL) -> None:
        """Rebuild what a killed process left unflushed, then flush every ``flush_interval``."""
        await self._recover()
        self._stopping = asyncio.Event()
        self._tasks = TaskOwner("metric-rollups")
        self._tasks.spawn("flush", self._flush_loop(flush_interval))

    async def stop(self) -> None:
        """Stop the flusher and flush the rest; the watermark is marked clean."""
        if self._tasks is None:
            return
        self._stopping.set()
        await self._tasks.stop()
        self._tasks = None
        await self.flush(clean=True)

    async def _flush_loop(self, interval: float) -> None:
        while not await sleep_or_stop(self._stopping, interval):
            try:
                await self.flush()
            except Exception as exc:  # the deltas were put back: the next round retries
                log.warning("metric rollup flush failed (%s: %s); retrying", type(exc).__name__, exc)

    @shielded
    async def flush(self, *, clean: bool = False) -> None:
        """Merge the open buckets into the stored rollups and raise the watermark."""
        async with self._flush_lock:
            taken, newest = self._open.take()
            if not taken and not clean:
                return
            mark = self._mark or 0
            if newest >= 0:
                mark = min(newest + 1, int(time.time()))
            # Transactions of _FLUSH_CHUNK rollups: each holds the write turn (SQLite) and the
            # event loop (decode, merge, encode) only briefly. The watermark goes with the last.
            order = sorted(taken)
            chunks = [order[i : i + _FLUSH_CHUNK] for i in range(0, len(order), _FLUSH_CHUNK)] or [[]]
            for i, chunk in enumerate(chunks):
                try:
                    async with self._store.write_tx(changes_rows=True) as conn:
                        if chunk:
                            await self._update_rollups(conn, {key: taken[key] for key in chunk})
                        if i == len(chunks) - 1:
                            await self._write_mark(conn, mark, clean=clean)
                except BaseException:
                    self._open.put_back({key: taken[key] for c in chunks[i:] for key in c}, newest)
                    raise
            self._mark = mark

    async def _write_mark(self, conn: AsyncConnection, mark: int, *, clean: bool = False) -> None:
        value = f"{mark} clean" if clean else str(mark)
        stmt = self._store._insert(settings).values(key=MARK_KEY, value=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=[settings.c.key], set_={"value": stmt.excluded.value}
        )
        await conn.execute(stmt)

    async def _recover(self) -> None:
        async with self._store.write_tx(changes_rows=True) as conn:
            query = sa.select(settings.c.value).where(settings.c.key == MARK_KEY)
            value = (await conn.execute(query)).scalar()
            if value is None:  # a new database, or rollups kept in every transaction until now
                newest = (await conn.execute(sa.select(sa.func.max(metric_latest.c.ts)))).scalar()
                mark = 0 if newest is None else int(newest) + 1
            else:
                text, _, state = str(value).partition(" ")
                mark = int(text)
                if state != "clean":
                    await self._rebuild(conn, mark - LATE_MARGIN)
            await self._write_mark(conn, mark)
        self._mark = mark

    async def _rebuild(self, conn: AsyncConnection, since: int) -> None:
        """Recompute the 5-minute rollups from ``since`` on from the raw points, then the hours
        from the 5-minute rollups; replace the stored rows."""
        since -= since % RES_5M
        hour = since - since % RES_1H
        await self.keys.load(conn, keysets=True)
        nodes = [int(k) for k in (await conn.execute(sa.select(node_keys.c.node_key))).scalars()]
        rebuilt = 0
        for i in range(0, len(nodes), _CHUNK):
            chunk = nodes[i : i + _CHUNK]
            points = (
                await conn.execute(
                    sa.select(metric_points.c.node_key, metric_points.c.ts, metric_points.c.data).where(
                        metric_points.c.node_key.in_(chunk), metric_points.c.ts >= since
                    )
                )
            ).all()
            added: list[Added] = []
            for node_key, ts, data in points:
                for type_key, blob in point_entries(bytes(data)):
                    values = decode_sample(blob, self.keys.keys_of)
                    added.append(
                        (int(node_key), int(ts), type_key, tuple(values), list(values.values()), blob)
                    )
            fives = {k: r for k, r in _partials(added).items() if k[2] == RES_5M}
            await self._replace_rollups(conn, fives)
            r = metric_rollups
            stored = (
                await conn.execute(
                    sa.select(r.c.node_key, r.c.type_key, r.c.bucket, r.c.data).where(
                        r.c.node_key.in_(chunk), r.c.res == RES_5M, r.c.bucket >= hour
                    )
                )
            ).all()
            hours: dict[RollupKey, Rollup] = {}
            for node_key, type_key, bucket, data in stored:
                key = (int(node_key), int(type_key), RES_1H, int(bucket) - int(bucket) % RES_1H)
                rollup = decode_rollup(bytes(data), self.keys.keys_of)
                acc = hours.get(key)
                if acc is None:
                    hours[key] = rollup
                else:
                    acc.merge(rollup)
            await self._replace_rollups(conn, hours)
            rebuilt += len(fives)
        log.info("metric rollups rebuilt from raw samples since %d (%d five-minute buckets)", since, rebuilt)

    async def _replace_rollups(self, conn: AsyncConnection, rollups: dict[RollupKey, Rollup]) -> None:
        rows = [(*key, self._encode_rollup(key, rollups[key])) for key in sorted(rollups)]
        for i in range(0, len(rows), _CHUNK):
            await conn.exec_driver_sql(_ROLLUP_UPSERT.format(p=self._params(5)), rows[i : i + _CHUNK])

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
                result = await conn.exec_driver_sql(_POINTS_PG, columns)
            else:
                sql = (
                    "INSERT INTO metric_points (node_key, n, ts, data) VALUES "
                    + ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT DO NOTHING RETURNING node_key, ts"
                )
                result = await conn.exec_driver_sql(sql, tuple(v for r in chunk for v in r))
            inserted.update((int(row[0]), int(row[1])) for row in result.all())
        return inserted

    async def _merge_points(
        self,
        conn: AsyncConnection,
        clashes: list[tuple[int, int]],
        entries: dict[tuple[int, int], list[Added]],
    ) -> list[Added]:
        """Points that already exist get the types they lack (a report split or resent)."""
        added: list[Added] = []
        m = self._marks(4)
        lock = " FOR UPDATE" if self._pg else ""
        select = f"SELECT data FROM metric_points WHERE node_key = {m[0]} AND ts = {m[1]}{lock}"
        update = f"UPDATE metric_points SET n = {m[0]}, data = {m[1]} WHERE node_key = {m[2]} AND ts = {m[3]}"
        for node_key, ts in clashes:
            data = (await conn.exec_driver_sql(select, (node_key, ts))).scalar_one()
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
        await conn.exec_driver_sql(_LATEST.format(p=self._params(4)), rows)

    async def _update_rollups(self, conn: AsyncConnection, partial: dict[RollupKey, Rollup]) -> None:
        """Merge rollup deltas into the stored rows: rows that exist are read (locked on
        PostgreSQL) and rewritten; new rows are inserted as they are, and any that another
        writer inserted meanwhile (PostgreSQL replicas) are read, merged and rewritten. No
        placeholder rows: on PostgreSQL every extra row version is a dead tuple."""
        order = sorted(partial)
        stored = await self._lock_rollups(conn, order)
        fresh = [(*key, self._encode_rollup(key, partial[key])) for key in order if key not in stored]
        inserted = await self._insert_rollups(conn, fresh)
        lost = [key for key in order if key not in stored and key not in inserted]
        if lost:
            stored.update(await self._lock_rollups(conn, lost))
        rows = []
        for key in order:
            old = stored.get(key)
            if old is not None:
                merged = await self._decode(functools.partial(_stored_rollup, old), conn)
                merged.merge(partial[key])
                rows.append((*key, self._encode_rollup(key, merged)))
        if rows:
            await conn.exec_driver_sql(_ROLLUP_UPSERT.format(p=self._params(5)), rows)

    def _encode_rollup(self, key: RollupKey, rollup: Rollup) -> bytes:
        keyset = self.keys.keysets.get(rollup.keys, 0)
        return encode_rollup(keyset, rollup, packed=key[2] == RES_5M)

    async def _insert_rollups(
        self, conn: AsyncConnection, rows: list[tuple[int, int, int, int, bytes]]
    ) -> set[RollupKey]:
        """Insert rows whose key is free; the keys inserted."""
        inserted: set[RollupKey] = set()
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            result: Any
            if self._pg:
                columns = tuple(list(c) for c in zip(*chunk, strict=True))
                result = await conn.exec_driver_sql(_ROLLUP_INSERT_PG, columns)
            else:
                sql = (
                    "INSERT INTO metric_rollups (node_key, type_key, res, bucket, data) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT DO NOTHING RETURNING node_key, type_key, res, bucket"
                )
                result = await conn.exec_driver_sql(sql, tuple(v for r in chunk for v in r))
            inserted.update((int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in result.all())
        return inserted

    async def _lock_rollups(self, conn: AsyncConnection, order: list[RollupKey]) -> dict[RollupKey, bytes]:
        """The stored data of those of these rollup rows that exist (locked until commit on
        PostgreSQL; SQLite has one writer at a time)."""
        stored: dict[RollupKey, bytes] = {}
        for i in range(0, len(order), _CHUNK):
            chunk = order[i : i + _CHUNK]
            result: Any
            if self._pg:
                columns = tuple(list(c) for c in zip(*chunk, strict=True))
                result = await conn.exec_driver_sql(_ROLLUP_LOCK_PG, columns)
            else:
                sql = rollup_lookup_sqlite(len(chunk))
                result = await conn.exec_driver_sql(sql, tuple(v for key in chunk for v in key))
            for row in result.all():
                stored[(int(row[0]), int(row[1]), int(row[2]), int(row[3]))] = bytes(row[4])
        return stored

    async def _decode(self, fn: Callable[[dict[int, Keys]], T], conn: AsyncConnection | None = None) -> T:
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
        query = (
            sa.select(metric_points.c.ts, metric_points.c.data)
            .where(metric_points.c.node_key == sa.bindparam("k"), metric_points.c.ts.between(start, end))
            .order_by(metric_points.c.ts)
        )
        async with self._engine.connect() as conn:
            keys = await self._keys(conn, node_id, type_)
            if keys is None:
                return []
            rows = (await conn.execute(query, {"k": keys[0]})).all()
        found = [
            (int(ts), blob) for ts, data in rows if (blob := point_entry(bytes(data), keys[1])) is not None
        ]

        def decode(lookup: dict[int, Keys]) -> list[MetricSample]:
            return [MetricSample(node_id, type_, ts, decode_sample(blob, lookup)) for ts, blob in found]

        return await self._decode(decode)

    @shielded
    async def count(self, node_id: str | None = None) -> int:
        query = sa.select(sa.func.coalesce(sa.func.sum(metric_points.c.n), 0))
        async with self._engine.connect() as conn:
            if node_id is not None:
                node_key = await self.keys.node_key(conn, node_id)
                if node_key is None:
                    return 0
                query = query.where(metric_points.c.node_key == node_key)
            return int((await conn.execute(query)).scalar_one())

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
        values = await self._decode(lambda lookup: decode_sample(blob, lookup))
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

        return sorted(await self._decode(decode), key=lambda r: (r[0], r[1]))

    async def _rollup_rows(
        self, node_id: str, type_: str, res: int, start: int, end: int
    ) -> tuple[list[tuple[int, bytes]], dict[int, Rollup]]:
        """The stored rollup rows (bucket, data) and copies of this process's open buckets."""
        r = metric_rollups
        where = (
            r.c.node_key == sa.bindparam("n"),
            r.c.type_key == sa.bindparam("t"),
            r.c.res == res,
            r.c.bucket.between(start - start % res, end),
        )
        async with self._engine.connect() as conn:
            keys = await self._keys(conn, node_id, type_)
            if keys is None:
                return [], {}
            params = {"n": keys[0], "t": keys[1]}
            open_ = self._open.overlay(keys[0], keys[1], res, start - start % res, end)
            if self._pg:
                # Two arrays in one row instead of a row object per bucket: a year of hourly
                # rollups is 8,760 rows, and their objects made garbage collection pauses.
                agg = sa.select(
                    sa.func.array_agg(aggregate_order_by(r.c.bucket, r.c.bucket)),
                    sa.func.array_agg(aggregate_order_by(r.c.data, r.c.bucket)),
                ).where(*where)
                buckets, blobs = (await conn.execute(agg, params)).one()
                return list(zip(buckets or [], blobs or [], strict=True)), open_
            query = sa.select(r.c.bucket, r.c.data).where(*where).order_by(r.c.bucket)
            rows = (await conn.execute(query, params)).all()
        return [(int(b), bytes(d)) for b, d in rows], open_

    @shielded
    async def rollups(
        self, node_id: str, type_: str, res: int, start: int, end: int
    ) -> list[tuple[int, Rollup]]:
        """The rollups of ``res`` seconds whose bucket overlaps [start, end], oldest first."""
        rows, open_ = await self._rollup_rows(node_id, type_, res, start, end)

        def decode(lookup: dict[int, Keys]) -> list[tuple[int, Rollup]]:
            out = {b: decode_rollup(d, lookup) for b, d in rows}
            for b, rollup in open_.items():
                found = out.get(b)
                if found is None:
                    out[b] = rollup
                else:
                    found.merge(rollup)
            return sorted(out.items(), key=lambda item: item[0])

        return await self._decode(decode)

    @shielded
    async def averages(
        self, node_id: str, type_: str, res: int, start: int, end: int, bucket_seconds: int
    ) -> list[tuple[int, dict[str, float], int]]:
        """(bucket start, average per key, samples) over buckets of ``bucket_seconds`` (a
        multiple of ``res``, aligned on multiples of itself), from the ``res`` rollups."""
        rows, open_ = await self._rollup_rows(node_id, type_, res, start, end)

        def fold(lookup: dict[int, Keys]) -> list[tuple[int, dict[str, float], int]]:
            out: dict[int, Rollup] = {}
            parts = (
                *((bucket, *decode_rollup_sums(data, lookup)) for bucket, data in rows),
                *((bucket, r.keys, r.n, r.count, r.total) for bucket, r in open_.items()),
            )
            for bucket, keys, n, count, sums in parts:
                start = bucket - bucket % bucket_seconds
                acc = out.get(start)
                if acc is None:
                    out[start] = Rollup(keys, n, list(count), list(sums))
                elif acc.keys == keys:  # the common case: list-wide additions in C
                    acc.n += n
                    acc.count = list(map(add, acc.count, count))
                    acc.total = list(map(add, acc.total, sums))
                else:
                    _merge_sums(acc, keys, n, count, sums)
            return [(b, acc.averages(), acc.n) for b, acc in sorted(out.items())]

        return await self._decode(fold)

    # -- deletion -------------------------------------------------------------------------

    @shielded
    async def delete_before(
        self, res: int, cutoff: int, after: int, max_nodes: int
    ) -> tuple[int, int | None]:
        """Delete samples (``res`` 0) or rollups of ``res`` older than ``cutoff`` for up to
        ``max_nodes`` nodes with a key above ``after``, in one transaction. The samples or
        rollups deleted, and the cursor for the next call (None when every node was swept)."""
        if res != RAW:
            await self.flush()  # open buckets past the cutoff go with the stored rows
        async with self._store.write_tx() as conn:
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
                m = self._marks(2)
                delete = f"DELETE FROM metric_points WHERE node_key = {m[0]} AND ts < {m[1]} RETURNING n"
                for node_key in nodes:
                    deleted += sum(
                        int(n) for (n,) in (await conn.exec_driver_sql(delete, (node_key, cutoff))).all()
                    )
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

    async def delete_node(self, conn: AsyncConnection, node_id: str) -> None:
        """Inside the caller's transaction: every sample, rollup and latest row of the node."""
        node_key = (
            await conn.execute(sa.select(node_keys.c.node_key).where(node_keys.c.node_id == node_id))
        ).scalar()
        if node_key is None:
            return
        self._open.drop_node(int(node_key))
        for table in (metric_points, metric_rollups, metric_latest):
            await conn.execute(table.delete().where(table.c.node_key == node_key))


def _stored_rollup(data: bytes, lookup: dict[int, Keys]) -> Rollup:
    return decode_rollup(data, lookup)


def _partials(added: list[Added]) -> dict[RollupKey, Rollup]:
    """The 5-minute and 1-hour rollups of the added samples: per 5-minute bucket in column
    operations (C loops: ``sum``, ``min``, ``max`` over each key), then hours from those."""
    groups: dict[RollupKey, list[Added]] = {}
    for a in added:
        groups.setdefault((a[0], a[2], RES_5M, a[1] - a[1] % RES_5M), []).append(a)
    partial: dict[RollupKey, Rollup] = {}
    for key, members in groups.items():
        keys = members[0][3]
        if all(m[3] == keys for m in members):
            columns = list(zip(*(m[4] for m in members), strict=True))
            n = len(members)
            rollup = Rollup(
                keys,
                n,
                [n] * len(keys),
                list(map(sum, columns)),
                list(map(min, columns)),
                list(map(max, columns)),
            )
        else:
            rollup = Rollup()
            for m in members:
                rollup.add(m[3], m[4])
        partial[key] = rollup
        node_key, type_key, _, bucket = key
        hour = (node_key, type_key, RES_1H, bucket - bucket % RES_1H)
        found = partial.get(hour)
        if found is None:
            partial[hour] = Rollup(
                keys, 0, [0] * len(keys), [0.0] * len(keys), list(rollup.low), list(rollup.high)
            )
        partial[hour].merge(rollup)
    return partial


def _merge_sums(acc: Rollup, keys: Keys, n: int, count: Sequence[int], sums: Sequence[float]) -> None:
    """Add counts and sums of other keys into ``acc`` (extremes are not kept here)."""
    index = {k: i for i, k in enumerate(acc.keys)}
    names = list(acc.keys)
    for key, c, s in zip(keys, count, sums, strict=True):
        i = index.get(key)
        if i is None:
            index[key] = len(names)
            names.append(key)
            acc.count.append(c)
            acc.total.append(s)
        else:
            acc.count[i] += c
            acc.total[i] += s
    acc.keys = tuple(names)
    acc.n += n
