"""Rollups off the write path: a metrics transaction writes raw points only, the flusher
merges the open buckets later, and a store killed before flushing loses nothing (the next
start rebuilds the rollups from the raw points). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opsfleet.manager.config import DatabaseSection, resolve_database_url
from opsfleet.manager.domain import MetricSample
from opsfleet.manager.store import metrics_sql
from opsfleet.manager.store.metric_codec import Rollup
from opsfleet.manager.store.metrics_sql import LATE_MARGIN, MARK_KEY, RES_1H, RES_5M
from opsfleet.manager.store.schema import metric_rollups, settings
from opsfleet.manager.store.sql import SqlStore

NEVER = 3600.0  # a flush interval no test waits for: only explicit flushes happen


def _samples(node: str, start: int, count: int, base: float) -> list[MetricSample]:
    """cpu samples a minute apart; values exact in binary, so sums do not depend on order."""
    return [
        MetricSample(node, "cpu", start + 60 * i, {"usage_percent": base + i, "cores": 8.0})
        for i in range(count)
    ]


def _stats(rollup: Rollup) -> tuple[int, dict[str, tuple[float, float, float, int] | None]]:
    return rollup.n, {k: rollup.stats(k) for k in sorted(rollup.keys)}


async def _expected(store: SqlStore, node: str, res: int, start: int, end: int) -> dict[int, object]:
    """The rollups recomputed from the raw samples."""
    out: dict[int, Rollup] = {}
    for s in await store.query_metrics(node, "cpu", start - start % res, end):
        out.setdefault(s.timestamp - s.timestamp % res, Rollup()).add(
            tuple(s.values), list(s.values.values())
        )
    return {b: _stats(r) for b, r in out.items()}


async def _stored(store: SqlStore, node: str, res: int, start: int, end: int) -> dict[int, object]:
    return {b: _stats(r) for b, r in await store.metrics.rollups(node, "cpu", res, start, end)}


async def _rollup_rows(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(metric_rollups))).scalar_one())


async def _mark(store: SqlStore) -> str:
    async with store.engine.connect() as conn:
        return str(
            (await conn.execute(sa.select(settings.c.value).where(settings.c.key == MARK_KEY))).scalar_one()
        )


async def _kill(store: SqlStore) -> None:
    """What kill -9 leaves: the flusher gone without a final flush, the connections dropped."""
    assert store.metrics._tasks is not None
    await store.metrics._tasks.stop(timeout=0)
    await store.engine.dispose()


async def test_inserts_write_no_rollup_rows_and_reads_include_open_buckets(
    database_url: str, tmp_path: Path
) -> None:
    url = resolve_database_url(DatabaseSection(url=database_url), tmp_path)
    store = SqlStore(url, rollup_flush_interval=NEVER)
    await store.start()
    try:
        t0 = (int(time.time()) - 7200) // RES_1H * RES_1H
        await store.insert_metrics(_samples("n1", t0, 12, 1.0))
        assert await _rollup_rows(store) == 0  # the transaction wrote raw points only
        for res in (RES_5M, RES_1H):
            expected = await _expected(store, "n1", res, t0, t0 + RES_1H)
            assert await _stored(store, "n1", res, t0, t0 + RES_1H) == expected
        averages = await store.metrics.averages("n1", "cpu", RES_5M, t0, t0 + RES_1H, 600)
        assert [(b, n) for b, _, n in averages] == [(t0, 10), (t0 + 600, 2)]
        assert averages[0][1] == {"usage_percent": 5.5, "cores": 8.0}

        await store.metrics.flush()
        assert await _rollup_rows(store) == 3 + 1  # three 5-minute buckets and one hour
        await store.insert_metrics(_samples("n1", t0 + 720, 3, 20.0))  # into a flushed bucket
        for res in (RES_5M, RES_1H):
            expected = await _expected(store, "n1", res, t0, t0 + RES_1H)
            assert await _stored(store, "n1", res, t0, t0 + RES_1H) == expected
    finally:
        await store.close()
    assert (await _reopened_mark(url)).endswith(" clean")


async def _reopened_mark(url: str) -> str:
    engine = sa.ext.asyncio.create_async_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.select(settings.c.value).where(settings.c.key == MARK_KEY)
            return str((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_a_store_killed_before_flushing_loses_no_rollups(database_url: str, tmp_path: Path) -> None:
    url = resolve_database_url(DatabaseSection(url=database_url), tmp_path)
    now = int(time.time())
    t0 = now - 1500  # the last 25 minutes: buckets on both sides of the watermark
    first = SqlStore(url, rollup_flush_interval=NEVER)
    await first.start()
    await first.insert_metrics(_samples("n1", t0, 10, 1.0) + _samples("n2", t0, 10, 100.0))
    await first.metrics.flush()  # the watermark moves past these
    await first.insert_metrics(_samples("n1", t0 + 600, 15, 40.0) + _samples("n2", t0 + 630, 14, 7.0))
    late = now - 3 * RES_1H  # a daemon's backlog, far behind the watermark: lowers it
    assert late < int((await _mark(first)).split()[0]) - LATE_MARGIN
    await first.insert_metrics(_samples("n1", late, 4, 0.5))
    assert int(await _mark(first)) == late
    await _kill(first)

    second = SqlStore(url, rollup_flush_interval=NEVER)
    await second.start()  # rebuilds from the raw points since the watermark
    try:
        for node in ("n1", "n2"):
            for res in (RES_5M, RES_1H):
                expected = await _expected(second, node, res, late, now)
                assert sum(n for n, _ in expected.values()) == (29 if node == "n1" else 24)
                assert await _stored(second, node, res, late, now) == expected, (node, res)
        assert await _rollup_rows(second) > 0
        await second.insert_metrics(_samples("n2", now - 30, 1, 3.0))
    finally:
        await second.close()  # a clean stop: the final flush

    third = SqlStore(url, rollup_flush_interval=NEVER)
    await third.start()  # clean: no rebuild needed, the rows are whole
    try:
        for res in (RES_5M, RES_1H):
            expected = await _expected(third, "n2", res, late, now)
            assert await _stored(third, "n2", res, late, now) == expected
    finally:
        await third.close()


async def test_the_flusher_runs_on_its_interval(database_url: str, tmp_path: Path) -> None:
    url = resolve_database_url(DatabaseSection(url=database_url), tmp_path)
    store = SqlStore(url, rollup_flush_interval=0.05)
    await store.start()
    try:
        await store.insert_metrics(_samples("n1", int(time.time()) - 600, 3, 1.0))
        deadline = time.monotonic() + 10
        while await _rollup_rows(store) == 0:
            assert time.monotonic() < deadline, "no flush within 10 s"
            await asyncio.sleep(0.02)
        assert len(store.metrics._open) == 0
    finally:
        await store.close()


async def test_a_failed_flush_keeps_what_it_did_not_write(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = resolve_database_url(DatabaseSection(url=database_url), tmp_path)
    store = SqlStore(url, rollup_flush_interval=NEVER)
    await store.start()
    try:
        monkeypatch.setattr(metrics_sql, "_FLUSH_CHUNK", 2)  # one transaction per two rollups
        t0 = (int(time.time()) - 7200) // RES_1H * RES_1H
        await store.insert_metrics(_samples("n1", t0, 20, 1.0))  # four 5-minute buckets, one hour
        original = store.metrics._update_rollups
        calls: list[int] = []

        async def second_fails(conn: Any, partial: dict[Any, Rollup]) -> None:
            calls.append(len(partial))
            if len(calls) == 2:
                raise RuntimeError("database went away")
            await original(conn, partial)

        monkeypatch.setattr(store.metrics, "_update_rollups", second_fails)
        with pytest.raises(RuntimeError):
            await store.metrics.flush()
        assert await _rollup_rows(store) == 2  # the first transaction's rollups
        assert len(store.metrics._open) == 3  # the rest is open again
        await store.metrics.flush()
        assert len(store.metrics._open) == 0
        for res in (RES_5M, RES_1H):
            expected = await _expected(store, "n1", res, t0, t0 + RES_1H)
            assert await _stored(store, "n1", res, t0, t0 + RES_1H) == expected
    finally:
        await store.close()
