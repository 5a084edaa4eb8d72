"""The rollup job's database work: finalize closed 5-minute buckets from the raw points.

Run by the elected replica only (services/metric_rollups.py drives it). Each :meth:`step`
is one bounded unit of work in one transaction that also moves the watermark
(metric_rollup_mark.py), so a crash or a change of leader resumes exactly where the last
commit ended:

- **dirty**: take up to ``DIRTY_BATCH`` marks of final buckets (deleting them first, which
  waits for a metrics transaction still holding one), fold the point rows of those buckets
  into their blocks, recompute the buckets from the raw samples (blocks and points, see
  metric_raw.py), rewrite their 5-minute rows and their hours;
- **window**: read the raw samples of the open window ``[done, end)`` for the next node keys
  after the cursor (indexed reads, ``NODE_GROUP`` keys at a time, until ``POINT_BUDGET``
  points), compute count/sum/min/max per node, type and bucket, then in the write
  transaction check that the mark is still the one planned from, fold the window's point
  rows of those nodes into one block per node and bucket (built from what the ``DELETE``
  returned, metric_raw_sql.py), write the 5-minute rows, recompute the affected 1-hour rows
  from the 5-minute rows, and move the cursor (or close the window once every node key is
  done). The read happens before the write turn: a sample committed after it is late and
  leaves a dirty mark, recomputed once final; a bucket whose folded points differ from the
  read gets a dirty mark from the job itself too.

A window spans at most ``MAX_WINDOW`` seconds of raw points (catch-up after downtime or
after the migration of older samples goes window by window; a stretch without points is
stepped over). Rows are only ever replaced by a recomputation, never merged into, so doing a
step twice cannot count a sample twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from opsfleet.manager.store import metric_raw_sql as raw
from opsfleet.manager.store.metric_codec import Keys, Rollup, decode_rollup, decode_sample, point_entries
from opsfleet.manager.store.metric_fold import (
    Added,
    RollupKey,
    copy_rollup,
    fold_hours,
    merge_into,
    rollups_5m,
)
from opsfleet.manager.store.metric_rollup_mark import (
    MARK_KEY,
    RES_1H,
    RES_5M,
    RollupMark,
    RollupStep,
    bucket_of,
    closed_before,
)
from opsfleet.manager.store.schema import (
    metric_rollup_dirty,
    metric_rollups,
    node_keys,
    settings,
)
from opsfleet.manager.store.shield import shielded
from opsfleet.manager.store.sql_base import StoreModule

log = logging.getLogger(__name__)

MAX_WINDOW = 3600
POINT_BUDGET = 10_000
NODE_GROUP = 100
DIRTY_BATCH = 500


class SqlRollupJob(StoreModule):
    """One step at a time; steps of one process must not overlap (one job task calls them)."""

    async def refresh_mark(self) -> RollupMark:
        return await self._store.metrics.refresh_mark()

    @shielded
    async def step(self, now: float) -> RollupStep:
        metrics = self._store.metrics
        async with self._engine.connect() as conn:
            mark = await metrics.read_mark(conn)
        if mark is None:
            mark = await self._first_mark(now)
        dirty = await self._dirty_step()
        if dirty is not None:
            return dirty
        return await self._window_step(mark, now)

    async def _write_mark(self, conn: AsyncConnection, mark: RollupMark) -> None:
        stmt = self._store._insert(settings).values(key=MARK_KEY, value=mark.encode())
        stmt = stmt.on_conflict_do_update(
            index_elements=[settings.c.key], set_={"value": stmt.excluded.value}
        )
        await conn.execute(stmt)

    async def _first_mark(self, now: float) -> RollupMark:
        """The watermark of a database that has none: the bucket of the oldest raw point (after
        the migration of older samples), else the newest closed bucket."""
        async with self._store.write_tx(changes_rows=True) as conn:
            mark = await self._store.metrics.read_mark(conn, lock=True)
            if mark is not None:
                return mark
            oldest = await self._oldest_point(conn, 0)
            grace = self._store.metrics.grace
            start = closed_before(now, grace) if oldest is None else bucket_of(oldest)
            mark = RollupMark(start, start, 0)
            await self._write_mark(conn, mark)
        log.info("metric rollups: watermark starts at %d", start)
        return mark

    async def _oldest_point(self, conn: AsyncConnection, since: int) -> int | None:
        """The bucket of the oldest raw sample at or after ``since`` (a bucket start)."""
        return await raw.oldest(conn, since)

    # -- late samples -------------------------------------------------------------------

    async def _dirty_step(self) -> RollupStep | None:
        metrics = self._store.metrics
        pg = metrics._pg
        d = metric_rollup_dirty
        async with self._store.write_tx(changes_rows=True) as conn:
            mark = await metrics.read_mark(conn, lock=True)
            if mark is None:
                return None
            final = sa.or_(
                d.c.bucket + RES_5M <= mark.done,
                sa.and_(d.c.node_key <= mark.cursor, d.c.bucket + RES_5M <= mark.end),
            )
            pick = sa.select(d.c.node_key, d.c.bucket).where(final).order_by(d.c.node_key, d.c.bucket)
            pick = pick.limit(DIRTY_BATCH)
            if metrics._pg:
                pick = pick.with_for_update()
            taken = [(int(k), int(b)) for k, b in (await conn.execute(pick)).all()]
            if not taken:
                return None
            await conn.execute(
                d.delete().where(d.c.node_key == sa.bindparam("k"), d.c.bucket == sa.bindparam("b")),
                [{"k": k, "b": b} for k, b in taken],
            )
            wanted: dict[int, set[int]] = {}
            for k, b in taken:
                wanted.setdefault(k, set()).add(b)
            points: list[tuple[int, int, bytes]] = []
            folded = 0
            for node_key, buckets in wanted.items():
                for first, stop in _runs(buckets):
                    _, rows = await raw.fold(conn, [node_key], first, stop, pg=pg)
                    folded += rows
                found = await raw.read_buckets(conn, node_key, buckets)
                points += [(k, ts, data) for (k, ts), data in sorted(found.items())]
            fives, samples = await self._rollups(conn, points)
            await metrics.replace_rollups(conn, fives)
            for node_key, buckets in wanted.items():
                hours = {b - b % RES_1H for b in buckets}
                await self._rebuild_hours(conn, [node_key], hours, mark.stored_until(node_key))
        log.debug("metric rollups: %d late buckets recomputed", len(taken))
        return RollupStep(
            "dirty", mark, points=len(points), samples=samples, buckets=len(fives), folded=folded
        )

    # -- windows --------------------------------------------------------------------------

    async def _window_step(self, mark: RollupMark, now: float) -> RollupStep:
        metrics = self._store.metrics
        limit = closed_before(now, metrics.grace)
        if mark.open:
            planned = mark
        else:
            end = _window_end(mark.done, limit)
            if end <= mark.done:
                return RollupStep("idle", mark)
            planned = RollupMark(mark.done, end, 0)
        points: list[tuple[int, int, bytes]] = []
        seen: raw.Points = {}
        read_nodes: list[int] = []
        last = planned.cursor
        exhausted = False
        async with self._engine.connect() as conn:
            while len(points) < POINT_BUDGET:
                group_query = (
                    sa.select(node_keys.c.node_key)
                    .where(node_keys.c.node_key > last)
                    .order_by(node_keys.c.node_key)
                    .limit(NODE_GROUP)
                )
                group = [int(k) for k in (await conn.execute(group_query)).scalars()]
                if not group:
                    exhausted = True
                    break
                found = await raw.read(conn, group, planned.done, planned.end)
                seen.update(found)
                points += [(k, ts, data) for (k, ts), data in sorted(found.items())]
                read_nodes += group
                last = group[-1]
                if len(group) < NODE_GROUP:
                    exhausted = True
                    break
            fives, samples = await self._rollups(conn, points)
        if not exhausted:
            after = RollupMark(planned.done, planned.end, last)
        elif planned.cursor == 0 and not points and planned.end < limit:
            # A whole window without raw points (downtime, or before the oldest migrated
            # sample): the mark goes on to the next point's window.
            async with self._engine.connect() as conn:
                oldest = await self._oldest_point(conn, planned.end)
            done = limit if oldest is None else min(limit, bucket_of(oldest))
            after = RollupMark(done, done, 0)
        else:
            after = RollupMark(planned.end, planned.end, 0)
        async with self._store.write_tx(changes_rows=True) as conn:
            current = await metrics.read_mark(conn, lock=True)
            if current != mark:
                log.info("metric rollups: the watermark moved elsewhere (%s, not %s)", current, mark)
                return RollupStep("conflict", current or mark)
            blocks, folded = await raw.fold(conn, read_nodes, planned.done, planned.end, pg=metrics._pg)
            await metrics.mark_dirty(conn, changed_since_read(seen, blocks))
            await metrics.replace_rollups(conn, fives)
            await metrics.replace_rollups(conn, await self._window_hours(conn, planned, fives))
            await self._write_mark(conn, after)
        metrics.mark = after
        return RollupStep(
            "window", after, points=len(points), samples=samples, buckets=len(fives), folded=folded
        )

    async def _window_hours(
        self, conn: AsyncConnection, window: RollupMark, fives: dict[RollupKey, Rollup]
    ) -> dict[RollupKey, Rollup]:
        """The 1-hour rows of the window's nodes for the hours it completes: its new 5-minute
        rollups and, for an hour begun before the window, the final 5-minute rows stored
        before it. An hour the window ends in is left to the window that completes it: reads
        compute the hour of the watermark from the raw samples (``SqlMetrics.rollups``), so a
        row written for it now would never be read, only rewritten by the next pass (on
        PostgreSQL a dead row version per node, type and pass until vacuum)."""
        hours: dict[RollupKey, Rollup] = {}
        first_hour = window.done - window.done % RES_1H
        if first_hour < window.done:
            nodes = sorted({key[0] for key in fives})
            r = metric_rollups
            earlier: list[tuple[int, int, int, bytes]] = []
            for i in range(0, len(nodes), 500):
                query = sa.select(r.c.node_key, r.c.type_key, r.c.bucket, r.c.data).where(
                    r.c.node_key.in_(nodes[i : i + 500]),
                    r.c.res == RES_5M,
                    r.c.bucket >= first_hour,
                    r.c.bucket < window.done,
                )
                found = (await conn.execute(query)).all()
                earlier += [(int(k), int(t), int(b), bytes(d)) for k, t, b, d in found]

            def decode(lookup: dict[int, Keys]) -> list[tuple[RollupKey, Rollup]]:
                return [((k, t, RES_5M, b), decode_rollup(d, lookup)) for k, t, b, d in earlier]

            fold_hours(hours, await self._store.metrics.decode(decode, conn))
        fold_hours(hours, ((key, copy_rollup(rollup)) for key, rollup in fives.items()))
        return {key: rollup for key, rollup in hours.items() if key[3] + RES_1H <= window.end}

    # -- computing --------------------------------------------------------------------------

    async def _rollups(
        self, conn: AsyncConnection, points: list[tuple[int, int, bytes]]
    ) -> tuple[dict[RollupKey, Rollup], int]:
        """The 5-minute rollups of raw points (node key, timestamp, data), and their samples."""

        def compute(lookup: dict[int, Keys]) -> tuple[dict[RollupKey, Rollup], int]:
            added: list[Added] = []
            for node_key, ts, data in points:
                for type_key, blob in point_entries(data):
                    values = decode_sample(blob, lookup)
                    added.append((node_key, ts, type_key, tuple(values), list(values.values()), blob))
            return rollups_5m(added), len(added)

        return await self._store.metrics.decode(compute, conn)

    async def _rebuild_hours(
        self, conn: AsyncConnection, nodes: list[int], hours: Iterable[int], until: int
    ) -> None:
        """Recompute these nodes' 1-hour rows of ``hours`` from their final 5-minute rows
        (those before ``until``)."""
        wanted = set(hours)
        if not nodes or not wanted:
            return
        lo, hi = min(wanted), min(max(wanted) + RES_1H, until)
        r = metric_rollups
        rows: list[tuple[int, int, int, bytes]] = []
        for i in range(0, len(nodes), 500):
            query = sa.select(r.c.node_key, r.c.type_key, r.c.bucket, r.c.data).where(
                r.c.node_key.in_(nodes[i : i + 500]), r.c.res == RES_5M, r.c.bucket >= lo, r.c.bucket < hi
            )
            rows += [(int(k), int(t), int(b), bytes(d)) for k, t, b, d in (await conn.execute(query)).all()]

        def fold(lookup: dict[int, Keys]) -> dict[RollupKey, Rollup]:
            out: dict[RollupKey, Rollup] = {}
            for node_key, type_key, bucket, data in rows:
                hour = bucket - bucket % RES_1H
                if hour not in wanted:
                    continue
                merge_into(out, (node_key, type_key, RES_1H, hour), decode_rollup(data, lookup))
            return out

        await self._store.metrics.replace_rollups(conn, await self._store.metrics.decode(fold, conn))


def changed_since_read(seen: raw.Points, folded: raw.Points) -> list[tuple[int, int]]:
    """(node key, bucket) of the folded buckets whose points differ from the job's read (a
    sample merged or inserted after it): their rollups are recomputed like a late sample's,
    even if its own transaction did not mark them."""
    folded_buckets = {(k, bucket_of(ts)) for k, ts in folded}
    changed = {(k, bucket_of(ts)) for (k, ts), data in folded.items() if seen.get((k, ts)) != data}
    changed.update(
        (k, bucket_of(ts)) for k, ts in seen if (k, bucket_of(ts)) in folded_buckets and (k, ts) not in folded
    )
    return sorted(changed)


def _runs(buckets: Iterable[int]) -> list[tuple[int, int]]:
    """[first, stop) of each run of consecutive 5-minute buckets."""
    runs: list[tuple[int, int]] = []
    for bucket in sorted(buckets):
        if runs and runs[-1][1] == bucket:
            runs[-1] = (runs[-1][0], bucket + RES_5M)
        else:
            runs.append((bucket, bucket + RES_5M))
    return runs


def _window_end(done: int, limit: int) -> int:
    """A window ends on an hour (so that in a catch-up each hour is computed in one window,
    from the 5-minute rollups in memory), at most ``MAX_WINDOW`` on, and never after ``limit``."""
    end = (done + MAX_WINDOW) // RES_1H * RES_1H
    return min(limit, end if end > done else done + MAX_WINDOW)
