"""Rollups with Manager replicas on one PostgreSQL: only the elected replica writes them, any
replica takes any sample, and when the leader stops the next one carries on from the
watermark: no bucket counted twice, none missed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsfleet.manager.domain import NodeRegistration
from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.services.metrics import RawMetric
from opsfleet.manager.store.metric_rollup_mark import closed_before
from tests.helpers import assert_eventually
from tests.integration.manager.rollup_support import (
    Clock,
    dirty_marks,
    final_rows_match_raw,
    minute,
    open_store,
    rollup_rows,
    store_url,
)
from tests.integration.manager.support import Running

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

NODES = [f"r{i}" for i in range(8)]


async def test_only_the_leader_writes_rollups_and_the_next_leader_resumes(
    database_url: str, tmp_path: Path
) -> None:
    url = store_url(database_url, tmp_path)
    t0 = (int(time.time()) - 3 * 86400) // 3600 * 3600
    clock = Clock(t0)
    a, _ = await open_store(url, clock)
    b, _ = await open_store(url, clock)
    leader = "a"
    job_a = RollupJob(a.rollup_job, clock=clock, is_leader=lambda: leader == "a")
    job_b = RollupJob(b.rollup_job, clock=clock, is_leader=lambda: leader == "b")
    try:
        await job_a.run_pass()
        for m in range(180):
            clock.now = t0 + 60 * m + 10
            ts = t0 + 60 * m
            samples = minute(NODES, ts, m)
            # Any replica takes any sample: even nodes through A, odd through B, and node r0's
            # memory through the other replica than its cpu (one point row, merged).
            await a.insert_metrics([s for s in samples if (int(s.node_id[1:]) + m) % 2 == 0])
            before = await rollup_rows(a)
            await b.insert_metrics([s for s in samples if (int(s.node_id[1:]) + m) % 2 == 1])
            follower = job_b if leader == "a" else job_a
            assert not (await follower.run_pass()).steps  # a follower runs no step ...
            assert await rollup_rows(a) == before  # ... and its inserts write no rollup
            if m % 3 == 0:
                await (job_a if leader == "a" else job_b).run_pass()
            if m == 100:
                # The leader changes while the old one is still in a step: both run at once.
                leader = "b"
                await asyncio.gather(a.rollup_job.step(clock.now), job_b.run_pass())
                await a.rollup_job.step(clock.now)  # a stale leader's step after the change
            if m == 120:
                # A backlog through the old leader, whose cached watermark is now stale.
                backlog = [s for k in range(0, 90, 11) for s in minute(NODES[:2], t0 + 60 * k + 30, 7 * k)]
                await a.insert_metrics(backlog)
        await job_b.run_pass()
        assert job_b.passes and await dirty_marks(a) == 0
        assert a.metrics.late_marked > 0  # the backlog went the dirty-mark way
        for store in (a, b):
            assert await final_rows_match_raw(store, NODES, t0 - 3600, t0 + 4 * 3600) == 8 * 2 * 35
    finally:
        await a.close()
        await b.close()


async def test_managers_fail_over_their_rollup_job(
    database_url: str, start_manager: Callable[..., Any]
) -> None:
    fast = {"metrics.rollup_interval": "0.2s", "metrics.rollup_grace": "10s"}
    first: Running = await start_manager(database_url, **fast)
    await assert_eventually(lambda: first.app.leadership.is_leader and first.app.rollups.passes > 0)
    second: Running = await start_manager(database_url, **fast)
    now = int(time.time())
    for node in NODES[:3]:
        await first.app.nodes.register(
            NodeRegistration(node, "h", "10.0.0.1", "linux", "amd64", {}, "1", "1")
        )
    for i, node in enumerate(NODES[:3]):
        via = (first, second)[i % 2]
        report = [RawMetric("cpu", now - 1800 + 30 * k, {"usage_percent": float(k % 50)}) for k in range(60)]
        await via.app.metrics.ingest(node, report)

    async def no_dirty_marks() -> bool:
        return await dirty_marks(first.app.store) == 0

    await assert_eventually(no_dirty_marks)
    assert second.app.rollups.passes == 0
    stopped_at = await rollup_rows(first.app.store)
    assert stopped_at > 0
    await first.app.stop()
    await assert_eventually(
        lambda: second.app.leadership.is_leader and second.app.rollups.passes > 0, timeout=30
    )
    later = int(time.time())
    target = closed_before(later, 10)
    for node in NODES[:3]:
        report = [RawMetric("cpu", later - 60 + 10 * k, {"usage_percent": 1.0}) for k in range(6)]
        await second.app.metrics.ingest(node, report)
    store = second.app.store

    async def caught_up() -> bool:
        async with store.engine.connect() as conn:
            mark = await store.metrics.read_mark(conn)
        return mark is not None and mark.done >= target and await dirty_marks(store) == 0

    await assert_eventually(caught_up, timeout=30)
    assert await final_rows_match_raw(store, NODES[:3], now - 7200, later + 3600) > 0


async def test_the_job_waits_for_a_late_sample_whose_mark_already_existed(
    database_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """A late sample meets a dirty mark the job is about to take: its metrics transaction
    locks the mark (an upsert), so the job's take waits for the commit and then reads the
    sample (an insert that skipped the existing mark would let the job take it and miss it)."""
    url = store_url(database_url, tmp_path)
    t0 = (int(time.time()) - 3 * 86400) // 3600 * 3600
    clock = Clock(t0)
    store, job = await open_store(url, clock)
    try:
        await job.run_pass()
        for m in range(20):
            clock.now = t0 + 60 * m + 10
            await store.insert_metrics(minute(NODES[:1], t0 + 60 * m, m))
        await job.run_pass()
        await store.insert_metrics(minute(NODES[:1], t0 + 30, 100))  # late: a dirty mark waits
        assert await dirty_marks(store) == 1
        marked = asyncio.Event()
        release = asyncio.Event()
        original = store.metrics._mark_late

        async def mark_then_hold(conn: Any, added: Any) -> None:
            await original(conn, added)
            marked.set()
            await release.wait()  # the transaction stays open, its mark upserted

        monkeypatch.setattr(store.metrics, "_mark_late", mark_then_hold)
        ingest = asyncio.create_task(store.insert_metrics(minute(NODES[:1], t0 + 45, 200)))
        await marked.wait()
        step = asyncio.create_task(store.rollup_job.step(clock.now))

        async def job_waits_or_is_done() -> bool:
            if step.done():
                return True
            async with store.engine.connect() as conn:
                waiting = await conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
                return bool(waiting.scalar())

        await assert_eventually(job_waits_or_is_done)
        release.set()
        await ingest
        assert (await step).kind == "dirty"
        await job.run_pass()
        assert await dirty_marks(store) == 0
        assert await final_rows_match_raw(store, NODES[:1], t0, t0 + 3600) > 0
    finally:
        await store.close()
