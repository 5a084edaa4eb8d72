"""The rollup job folds final buckets' point rows into blocks: every read of raw samples
(queries, rollup reads, counts, retention, node deletion) gives the same answers before and
after, with late, resent and concurrently merged samples (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from opsfleet.manager.domain import MetricSample
from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.store import metric_raw_sql
from opsfleet.manager.store.metric_codec import encode_sample
from opsfleet.manager.store.metric_rollup_mark import RES_5M
from opsfleet.manager.store.metrics_sql import RAW
from opsfleet.manager.store.queries_sql import SqlFleetQueries
from opsfleet.manager.store.schema import metric_blocks, metric_points
from opsfleet.manager.store.sql import SqlStore
from tests.integration.manager.rollup_support import (
    TYPES,
    Clock,
    dirty_marks,
    final_rows_match_raw,
    ingest_minutes,
    node_key,
    open_store,
    store_url,
)

NODES = ["n1", "n2", "n3"]
MINUTES = 60


def _start() -> int:
    """Three days ago on an hour: inside the raw retention, outside every clock-based window."""
    return (int(time.time()) - 3 * 86400) // 3600 * 3600


@contextlib.asynccontextmanager
async def _loaded(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[int, Clock, SqlStore, RollupJob]]:
    """A store with an hour of reports of three nodes, each arriving 10 s after it was taken
    (not late); the job has started its watermark before them and not run since."""
    t0 = _start()
    clock = Clock(t0)
    store, job = await open_store(store_url(database_url, tmp_path), clock)
    try:
        await job.run_pass()
        await ingest_minutes(store, clock, NODES, t0, MINUTES)
        yield t0, clock, store, job
    finally:
        await store.close()


async def _rows(store: SqlStore, table: sa.Table) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def _everything(store: SqlStore, start: int, end: int) -> dict[str, Any]:
    """Every answer built from raw samples: queries of each series, counts, rollup reads."""
    out: dict[str, Any] = {"count": await store.count_metrics()}
    for node in NODES:
        out[f"count {node}"] = await store.count_metrics(node)
        for type_ in TYPES:
            samples = await store.query_metrics(node, type_, start, end)
            out[f"{node} {type_}"] = [(s.timestamp, s.values) for s in samples]
            for res in (300, 3600):
                rollups = await store.metrics.rollups(node, type_, res, start, end)
                out[f"{node} {type_} {res}"] = [(b, r.n, r.stats("usage_percent")) for b, r in rollups]
    return out


async def test_folding_changes_no_answer_and_leaves_one_row_per_node_and_bucket(
    database_url: str, tmp_path: Path
) -> None:
    async with _loaded(database_url, tmp_path) as (t0, clock, store, job):
        end = t0 + 2 * 3600
        before = await _everything(store, t0 - 600, end)
        assert before["count"] == len(NODES) * MINUTES * 2
        assert await _rows(store, metric_points) == len(NODES) * MINUTES
        clock.now = t0 + 3600 + 10 * 60
        result = await job.run_pass()
        assert result.folded == len(NODES) * MINUTES
        assert await _rows(store, metric_points) == 0
        assert await _rows(store, metric_blocks) == len(NODES) * MINUTES * 60 // RES_5M
        assert await _everything(store, t0 - 600, end) == before
        assert await final_rows_match_raw(store, NODES, t0, end) == len(NODES) * 2 * 12
        assert await dirty_marks(store) == 0


async def test_late_and_resent_samples_of_folded_buckets_are_read_once_and_folded_by_the_job(
    database_url: str, tmp_path: Path
) -> None:
    async with _loaded(database_url, tmp_path) as (t0, clock, store, job):
        clock.now = t0 + 3600 + 10 * 60
        await job.run_pass()
        end = t0 + 2 * 3600
        folded = await _everything(store, t0, end)
        # Late: a new timestamp in a folded bucket, and a type the folded point lacks.
        late = [
            MetricSample("n1", "cpu", t0 + 90, {"usage_percent": 55.0, "cores": 8.0}),
            MetricSample("n2", "disk", t0 + 120, {"used_bytes": 7.0}),
        ]
        # Resent: samples the block holds, one with other values (the first stored wins).
        resent = [
            MetricSample("n1", "cpu", t0 + 60, {"usage_percent": 1.0, "cores": 8.0}),
            MetricSample("n3", "memory", t0 + 600, {"used_bytes": 999.0}),
        ]
        await store.insert_metrics(late + resent)
        assert await _rows(store, metric_points) == 4  # the insert path is the same as ever
        assert await dirty_marks(store) == 3  # (n1, t0) twice, (n2, t0), (n3, t0 + 600)
        now = await _everything(store, t0, end)
        assert now["count"] == folded["count"] + 2 and now["count n3"] == folded["count n3"]
        assert now["n1 cpu"] == sorted(folded["n1 cpu"] + [(t0 + 90, {"usage_percent": 55.0, "cores": 8.0})])
        assert now["n3 memory"] == folded["n3 memory"]
        assert await store.query_metrics("n2", "disk", t0, end) == [late[1]]
        result = await job.run_pass()  # the dirty step folds the late rows into their blocks
        assert result.folded == 4
        assert await _rows(store, metric_points) == 0 and await dirty_marks(store) == 0
        assert await _everything(store, t0, end) == now
        assert await store.query_metrics("n2", "disk", t0, end) == [late[1]]
        assert await final_rows_match_raw(store, NODES, t0, end) == len(NODES) * 2 * 12


async def test_a_point_changed_after_the_jobs_read_is_folded_and_recomputed(
    database_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """Regression: the job reads a window, then a sample is merged into a point row of it and
    another lands in a new point row, before its write transaction. Neither is marked late by
    its own transaction (the store's clock says the bucket is open): the blocks are built from
    what the job's DELETE returned, and the job marks the changed buckets itself."""
    async with _loaded(database_url, tmp_path) as (t0, clock, store, job):
        end = t0 + 2 * 3600
        extra = [
            MetricSample("n1", "disk", t0 + 60, {"used_bytes": 5.0}),  # merged into a point row
            MetricSample("n2", "cpu", t0 + 61, {"usage_percent": 3.0, "cores": 8.0}),  # a new row
        ]
        read = metric_raw_sql.read
        injected: list[int] = []

        async def read_then_insert(conn: Any, keys: Any, lo: int, hi: int) -> metric_raw_sql.Points:
            found = await read(conn, keys, lo, hi)
            if found and not injected:
                injected.append(lo)
                clock.now = t0 + 70  # as seen by the metrics transaction: not late
                await store.insert_metrics(extra)
                clock.now = t0 + 3600 + 10 * 60
            return found

        monkeypatch.setattr(metric_raw_sql, "read", read_then_insert)
        clock.now = t0 + 3600 + 10 * 60
        while not injected:  # the first window with points: the injection happens during its read
            step = await store.rollup_job.step(clock.now)
            assert step.kind == "window"
        assert injected == [t0] and store.metrics.late_marked == 0
        assert await dirty_marks(store) == 2  # marked by the job, not by the inserts
        monkeypatch.setattr(metric_raw_sql, "read", read)
        for sample in extra:
            [got] = await store.query_metrics(sample.node_id, sample.type, sample.timestamp, sample.timestamp)
            assert got == sample
        await job.run_pass()
        assert await _rows(store, metric_points) == 0 and await dirty_marks(store) == 0
        assert await store.count_metrics() == len(NODES) * MINUTES * 2 + 2
        assert await final_rows_match_raw(store, NODES, t0, end) == len(NODES) * 2 * 12
        fives = dict(await store.metrics.rollups("n2", "cpu", RES_5M, t0, t0 + 299))
        assert fives[t0].n == 6  # the sample inserted after the job's read is in its rollup


async def test_retention_and_node_deletion_remove_blocks(database_url: str, tmp_path: Path) -> None:
    async with _loaded(database_url, tmp_path) as (t0, clock, store, job):
        clock.now = t0 + 3600 + 10 * 60
        await job.run_pass()
        await store.insert_metrics([MetricSample("n1", "cpu", t0 + 1, {"usage_percent": 1.0})])  # late
        await job.run_pass()
        cutoff = t0 + 1800
        deleted, cursor = await store.metrics.delete_before(RAW, cutoff, 0, 10)
        assert cursor is None
        assert deleted == len(NODES) * 30 * 2 + 1
        assert await store.count_metrics() == len(NODES) * 30 * 2
        samples = await store.query_metrics("n1", "cpu", 0, t0 + 7200)
        assert [s.timestamp for s in samples] == [t0 + 60 * m for m in range(30, MINUTES)]
        assert await _rows(store, metric_blocks) == len(NODES) * 6
        key = await node_key(store, "n2")
        await SqlFleetQueries(store).delete_node("n2")  # metrics only: never registered
        async with store.engine.connect() as conn:
            query = (
                sa.select(sa.func.count()).select_from(metric_blocks).where(metric_blocks.c.node_key == key)
            )
            assert (await conn.execute(query)).scalar_one() == 0
        assert await store.count_metrics() == 2 * 30 * 2


async def test_a_point_row_the_job_folded_meanwhile_is_inserted_again(
    database_url: str, tmp_path: Path
) -> None:
    """The insert found the row (a conflict), then the job's DELETE took it before the merge
    read it (PostgreSQL): the merge inserts the point again instead of failing."""
    async with _loaded(database_url, tmp_path) as (t0, clock, store, job):
        clock.now = t0 + 3600 + 10 * 60
        await job.run_pass()
        metrics = store.metrics
        key = await node_key(store, "n1")
        sample = MetricSample("n1", "disk", t0 + 60, {"used_bytes": 4.0})
        async with store.engine.connect() as conn:
            await metrics.keys.load(conn, types=True, keysets=True)
        await metrics.insert([MetricSample("n1", "disk", t0 + 7200, {"used_bytes": 1.0})])  # keys exist
        type_key = metrics.keys.types["disk"]
        blob = encode_sample(metrics.keys.keysets[("used_bytes",)], ("used_bytes",), [4.0])
        entries = {(key, t0 + 60): [(key, t0 + 60, type_key, ("used_bytes",), [4.0], blob)]}
        async with store.write_tx(changes_rows=True) as conn:
            added = await metrics._merge_points(conn, [(key, t0 + 60)], entries)
        assert len(added) == 1
        assert await store.query_metrics("n1", "disk", t0, t0 + 300) == [sample]


class _FoldAfterFirstStatement:
    """A connection whose first statement is followed by a pass of the rollup job (which
    folds the points that statement may have read) before its result is returned."""

    def __init__(self, conn: Any, job: RollupJob) -> None:
        self._conn = conn
        self._job = job
        self.folded = -1

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._conn.execute(*args, **kwargs)
        if self.folded < 0:
            self.folded = (await self._job.run_pass()).folded
        return result


async def test_a_count_is_right_while_the_job_folds(database_url: str, tmp_path: Path) -> None:
    """Regression: counting points and blocks in separate statements counted the samples
    the job folded between them twice."""
    async with _loaded(database_url, tmp_path) as (t0, clock, store, job):
        clock.now = t0 + 3600 + 10 * 60
        async with store.engine.connect() as conn:
            racing = _FoldAfterFirstStatement(conn, job)
            assert await metric_raw_sql.count(racing) == len(NODES) * MINUTES * 2
        assert racing.folded == len(NODES) * MINUTES
