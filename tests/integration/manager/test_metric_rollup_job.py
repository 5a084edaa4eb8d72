"""The rollup job of the elected replica: rollups equal a recomputation from the raw samples
after normal ingest, after late samples, after a kill -9 in the middle of a pass; the
metrics transaction writes no rollups (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.store.metric_rollup_mark import RES_1H, RollupMark, closed_before
from opsfleet.manager.store.schema import metric_rollups
from opsfleet.manager.store.sql import SqlStore
from tests.integration.manager.rollup_support import (
    Clock,
    dirty_marks,
    final_rows_match_raw,
    ingest_minutes,
    minute,
    node_key,
    open_store,
    rollup_rows,
    store_url,
    stored,
)

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
NODES = [f"n{i}" for i in range(6)]


def _start() -> int:
    """Three days ago on an hour: inside the raw retention, outside every clock-based window."""
    return (int(time.time()) - 3 * 86400) // 3600 * 3600


@contextlib.asynccontextmanager
async def _opened(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[int, Clock, SqlStore, RollupJob]]:
    """A store and its rollup job on a clock starting at a whole hour; the store closed after."""
    t0 = _start()
    clock = Clock(t0)
    store, job = await open_store(store_url(database_url, tmp_path), clock)
    try:
        yield t0, clock, store, job
    finally:
        await store.close()


async def test_normal_ingest_writes_no_rollups_and_the_job_matches_the_raw_samples(
    database_url: str, tmp_path: Path
) -> None:
    async with _opened(database_url, tmp_path) as (t0, clock, store, job):
        await job.run_pass()  # the first mark: the newest closed bucket
        for m in range(150):
            clock.now = t0 + 60 * m + 10  # each report arrives 10 s after its samples
            before = await rollup_rows(store)
            await store.insert_metrics(minute(NODES, t0 + 60 * m, m))
            assert await rollup_rows(store) == before  # the metrics transaction writes no rollup
            if m % 2:
                await job.run_pass()
        await job.run_pass()
        assert store.metrics.late_marked == 0 and await dirty_marks(store) == 0
        async with store.engine.connect() as conn:
            mark = await store.metrics.read_mark(conn)
        assert mark == RollupMark(closed_before(clock.now, 120), closed_before(clock.now, 120), 0)
        assert await final_rows_match_raw(store, NODES, t0 - 3600, t0 + 4 * 3600) == 6 * 2 * 29


async def test_late_samples_are_marked_read_right_away_and_recomputed_by_the_job(
    database_url: str, tmp_path: Path
) -> None:
    async with _opened(database_url, tmp_path) as (t0, clock, store, job):
        await job.run_pass()
        await ingest_minutes(store, clock, NODES, t0, 90)
        await job.run_pass()
        final = await final_rows_match_raw(store, NODES, t0, t0 + 2 * 3600)
        # A daemon's backlog: samples between the stored ones, in buckets already final.
        late = [s for m in range(0, 60, 7) for s in minute(NODES[:3], t0 + 60 * m + 30, 1000 + m)]
        before = await rollup_rows(store)
        await store.insert_metrics(late)
        assert await rollup_rows(store) == before
        assert await dirty_marks(store) == 3 * len({(60 * m + 30) // 300 for m in range(0, 60, 7)})
        # Reads recompute dirty buckets from the raw samples until the job has run ...
        with pytest.raises(AssertionError):
            await final_rows_match_raw(store, NODES, t0, t0 + 2 * 3600)  # ... but the stored rows lag
        await job.run_pass()
        assert await dirty_marks(store) == 0
        assert await final_rows_match_raw(store, NODES, t0, t0 + 2 * 3600) == final


async def test_reads_see_samples_past_the_watermark_and_dirty_buckets(
    database_url: str, tmp_path: Path
) -> None:
    async with _opened(database_url, tmp_path) as (t0, clock, store, job):
        await job.run_pass()
        await ingest_minutes(store, clock, NODES[:2], t0, 40)
        await job.run_pass()
        await store.insert_metrics(minute(NODES[:2], t0 + 90, 500))  # late
        for node in NODES[:2]:
            rollups = await store.metrics.rollups(node, "cpu", 3600, t0, t0 + 3600)
            assert [(b, r.n) for b, r in rollups] == [(t0, 41)]
            fives = await store.metrics.rollups(node, "cpu", 300, t0, t0 + 3600)
            assert [r.n for _, r in fives] == [6, 5, 5, 5, 5, 5, 5, 5]


async def test_an_hour_row_is_written_once_when_its_hour_is_complete(
    database_url: str, tmp_path: Path
) -> None:
    """Passes every minute write an hour's row only once the hour is final (a row written
    for the hour in progress was never read and was rewritten by every pass)."""
    async with _opened(database_url, tmp_path) as (t0, clock, store, job):
        await job.run_pass()
        hour_rows: list[int] = []
        hour_counts: set[int] = set()  # samples in the stored rows of the hour, at every pass
        for m in range(75):
            clock.now = t0 + 60 * m + 10
            await store.insert_metrics(minute(NODES[:2], t0 + 60 * m, m))
            await job.run_pass()
            rows = await stored(store)
            hour_rows.append(sum(1 for (_, _, res, bucket) in rows if res == RES_1H and bucket == t0))
            hour_counts.update(value[0] for key, value in rows.items() if key[2:] == (RES_1H, t0))
            if m == 40:  # mid-hour: the chart of the hour still counts every sample so far
                for node in NODES[:2]:
                    [(bucket, rollup)] = await store.metrics.rollups(node, "cpu", RES_1H, t0, t0 + 3599)
                    assert (bucket, rollup.n) == (t0, 41)
        # The hour's rows appear with the pass that finalizes its last 5-minute bucket, complete.
        first = hour_rows.index(4)  # 2 nodes x 2 types
        assert set(hour_rows[:first]) == {0} and set(hour_rows[first:]) == {4}
        assert hour_counts == {60}  # never a partial row (before: 5, 10, 15, ... as the hour went on)
        rows = await stored(store)
        assert {rows[(node, "cpu", RES_1H, t0)][0] for node in NODES[:2]} == {60}
        assert await final_rows_match_raw(store, NODES[:2], t0, t0 + 3600) == 2 * 2 * 12


async def test_rollups_of_a_range_ending_before_the_watermark_stop_at_its_end(
    database_url: str, tmp_path: Path
) -> None:
    async with _opened(database_url, tmp_path) as (t0, clock, store, job):
        await job.run_pass()
        await ingest_minutes(store, clock, NODES[:1], t0, 75)
        await job.run_pass()  # the watermark passes t0 + 1 h
        for res, end in ((300, t0 + 1799), (300, t0 + 1800), (3600, t0 + 3599)):
            buckets = [b for b, _ in await store.metrics.rollups(NODES[0], "cpu", res, t0, end)]
            # The buckets overlapping [t0, end]; before, also every stored row after them up to
            # the watermark.
            assert buckets == list(range(t0, end - end % res + 1, res)), (res, end, [b - t0 for b in buckets])


async def test_a_job_killed_mid_pass_resumes_where_its_last_commit_ended(
    database_url: str, tmp_path: Path
) -> None:
    url = store_url(database_url, tmp_path)
    t0 = _start()
    clock = Clock(t0)
    store, job = await open_store(url, clock)
    nodes = [f"k{i}" for i in range(12)]
    try:
        await job.run_pass()
        await ingest_minutes(store, clock, nodes, t0, 130)
    finally:
        await store.close()
    now = t0 + 130 * 60 + 200
    # Small steps (2 node keys, 30 points), the process killed inside the transaction of
    # its 4th step, after it wrote rollup rows and before the watermark.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(PROGRAMS / "rollup_job_kill.py"), url, str(now), "4"
    )
    assert await proc.wait() == -signal.SIGKILL
    store, job = await open_store(url, Clock(now))
    try:
        async with store.engine.connect() as conn:
            mark = await store.metrics.read_mark(conn)
        # Three steps committed: the empty window before t0, then four node keys of the next.
        keys = sorted([await node_key(store, node) for node in nodes])
        assert mark == RollupMark(t0, t0 + 3600, keys[3])
        await job.run_pass()
        assert await final_rows_match_raw(store, nodes, t0, t0 + 3 * 3600) == 12 * 2 * 26
    finally:
        await store.close()


async def test_a_step_planned_from_a_mark_that_moved_writes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """Two leaders for a moment (the old one still in a step): the later write sees the mark
    moved and leaves the rows alone."""
    async with _opened(database_url, tmp_path) as (t0, clock, store, job):
        await job.run_pass()
        await ingest_minutes(store, clock, NODES, t0, 20)
        async with store.engine.connect() as conn:
            stale = await store.metrics.read_mark(conn)
        assert stale is not None
        await job.run_pass()
        before = await rollup_rows(store)
        async with store.engine.begin() as conn:
            await conn.execute(sa.update(metric_rollups).values(data=b"\x00"))  # would be visible
        step = await store.rollup_job._window_step(stale, clock.now)
        assert step.kind == "conflict"
        async with store.engine.connect() as conn:
            assert (
                await conn.execute(sa.select(sa.func.count()).select_from(metric_rollups))
            ).scalar() == before
            left = (
                await conn.execute(sa.select(sa.func.count()).where(metric_rollups.c.data == b"\x00"))
            ).scalar()
        assert left == before  # nothing rewritten
