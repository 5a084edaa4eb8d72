"""Migration 0011 moves samples of the old JSON table into compact rows, and back; the rollup
job then builds their rollups. 0012 packs the metric indexes; 0013 adds the blocks and moves
their samples back into point rows on downgrade."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.ext.asyncio import create_async_engine

from opsfleet.manager.config import DatabaseSection, resolve_database_url
from opsfleet.manager.domain import MetricSample
from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.store.metric_codec import point_entries
from opsfleet.manager.store.sql import MIGRATIONS_DIR, SqlStore
from tests.integration.manager.rollup_support import final_rows_match_raw, rollup_rows

T0 = 1_790_000_000 - 1_790_000_000 % 3600
HOUR_END = 3599
OLD_ROWS = [
    ("n1", "cpu", T0 + 60 * i, {"usage_percent": 10.0 + i, "cores": 4, "user": 123.45 * i}) for i in range(8)
] + [
    ("n1", "memory", T0, {"used_bytes": 1_600_000_000, "usage_percent": 12.5}),
    ("n2", "custom.gpu_0", T0 + 30, {"temp_c": 61.25}),
    ("n2", "cpu", T0 + 30, {"usage_percent": 1.0, "odd": 0.1 + 0.2}),
]


async def _migrate(url: str, action: str, revision: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:

            def run(sync_conn: sa.Connection) -> None:
                cfg = AlembicConfig()
                cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
                cfg.attributes["connection"] = sync_conn
                getattr(command, action)(cfg, revision)

            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def _select(url: str, sql: str) -> list[Any]:
    """The rows of one SQL query, on an engine of its own (the store is closed meanwhile)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql))).all())
    finally:
        await engine.dispose()


async def _old_rows(url: str) -> list[tuple[str, str, int, dict[str, Any]]]:
    rows = await _select(
        url, 'SELECT node_id, type, ts, "values" FROM metric_samples ORDER BY node_id, type, ts'
    )
    return [(n, t, int(ts), v if isinstance(v, dict) else json.loads(v)) for n, t, ts, v in rows]


async def test_old_samples_are_readable_after_the_upgrade_and_come_back_on_downgrade(
    database_url: str, tmp_path: Path
) -> None:
    url = resolve_database_url(DatabaseSection(url=database_url), tmp_path)
    await _migrate(url, "upgrade", "0009")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text('INSERT INTO metric_samples (node_id, type, ts, "values") VALUES (:n, :t, :ts, :v)'),
                [{"n": n, "t": t, "ts": ts, "v": json.dumps(v)} for n, t, ts, v in OLD_ROWS],
            )
    finally:
        await engine.dispose()

    store = SqlStore(url)
    await store.start()  # migrates to head
    try:
        assert await store.count_metrics() == len(OLD_ROWS)
        cpu = await store.query_metrics("n1", "cpu", T0, T0 + HOUR_END)
        assert [(s.timestamp, s.values) for s in cpu] == [
            (ts, {k: float(x) for k, x in v.items()}) for n, t, ts, v in OLD_ROWS if (n, t) == ("n1", "cpu")
        ]
        [gpu] = await store.query_metrics("n2", "custom.gpu_0", 0, 2**40)
        assert gpu.values == {"temp_c": 61.25}
        [odd] = await store.query_metrics("n2", "cpu", 0, 2**40)
        assert odd.values["odd"] == 0.1 + 0.2
        [(bucket, five)] = await store.metrics.rollups("n1", "cpu", 300, T0, T0 + 299)
        assert bucket == T0 and five.n == 5 and five.stats("usage_percent") == (10.0, 14.0, 60.0, 5)
        [(_, hour)] = await store.metrics.rollups("n1", "cpu", 3600, T0, T0 + 10)
        assert hour.n == 8
        # The rollup job's first pass starts at the oldest moved sample and catches up.
        assert await rollup_rows(store) == 0
        assert (await RollupJob(store.rollup_job).run_pass()).samples == len(OLD_ROWS)
        assert await rollup_rows(store) == 3 + 2 + 2 + 2  # n1 cpu has two 5-minute buckets
        assert await final_rows_match_raw(store, ["n1"], T0, T0 + HOUR_END + 1) == 3
        latest = await store.metrics.latest("n1", "cpu")
        assert latest is not None and latest.timestamp == T0 + 7 * 60
        # New samples go on next to the moved ones.
        await store.insert_metrics([MetricSample("n1", "cpu", T0 + 480, {"usage_percent": 1.0})])
        assert await store.count_metrics("n1") == 10
    finally:
        await store.close()

    await _migrate(url, "downgrade", "0009")
    back = await _old_rows(url)
    expected = [(n, t, ts, {k: float(x) for k, x in v.items()}) for n, t, ts, v in OLD_ROWS]
    expected.append(("n1", "cpu", T0 + 480, {"usage_percent": 1.0}))
    assert back == sorted(expected, key=lambda r: (r[0], r[1], r[2]))


async def _index_fillfactors(url: str) -> dict[str, list[str] | None]:
    rows = await _select(
        url,
        "SELECT relname, reloptions FROM pg_class "
        "WHERE relname IN ('metric_points_pkey', 'metric_rollups_pkey')",
    )
    return {str(name): (list(options) if options else None) for name, options in rows}


async def test_0012_packs_the_metric_indexes_and_keeps_every_row(database_url: str, tmp_path: Path) -> None:
    """Up from 0011 with samples and rollups stored, down and up again: the rows stay
    readable (the indexes are rebuilt under them) and, on PostgreSQL, the two primary key
    indexes take fillfactor 100 and give it back on downgrade."""
    url = resolve_database_url(DatabaseSection(url=database_url), tmp_path)
    await _migrate(url, "upgrade", "0011")
    store = SqlStore(url)
    await store.start()  # to head
    try:
        store.metrics.clock = lambda: T0 + 600  # the samples arrive as they are taken
        await store.insert_metrics([MetricSample(n, t, ts, v) for n, t, ts, v in OLD_ROWS])
        await RollupJob(store.rollup_job, clock=lambda: T0 + 2 * 3600).run_pass()
        before = await rollup_rows(store)
        assert before == 3 + 2 + 2 + 2  # as after 0011's catch-up above
    finally:
        await store.close()
    postgres = url.startswith("postgresql")
    if postgres:
        assert await _index_fillfactors(url) == {
            "metric_points_pkey": ["fillfactor=100"],
            "metric_rollups_pkey": ["fillfactor=100"],
        }
    await _migrate(url, "downgrade", "0011")
    if postgres:
        assert await _index_fillfactors(url) == {"metric_points_pkey": None, "metric_rollups_pkey": None}
    store = SqlStore(url)
    await store.start()  # up again
    try:
        assert await store.count_metrics() == len(OLD_ROWS)
        assert await rollup_rows(store) == before
        assert await final_rows_match_raw(store, ["n1", "n2"], T0, T0 + HOUR_END + 1) >= 3
        cpu = await store.query_metrics("n1", "cpu", T0, T0 + HOUR_END)
        assert [s.values["usage_percent"] for s in cpu] == [10.0 + i for i in range(8)]
    finally:
        await store.close()


async def _points_table(url: str) -> dict[tuple[int, int, int], bytes]:
    """Every sample of ``metric_points`` by (node key, type key, timestamp), read with SQL."""
    rows = await _select(url, "SELECT node_key, ts, data FROM metric_points")
    return {
        (int(k), type_key, int(ts)): blob
        for k, ts, data in rows
        for type_key, blob in point_entries(bytes(data))
    }


async def test_0013_blocks_go_back_into_point_rows_on_downgrade(database_url: str, tmp_path: Path) -> None:
    """Up to 0013, samples folded into blocks with a late and a resent sample left in point
    rows; down to 0012: every sample is a point row again (a resent one keeps the block's
    copy) and the PostgreSQL options are reset; up again: the store reads the same."""
    url = resolve_database_url(DatabaseSection(url=database_url), tmp_path)
    store = SqlStore(url)
    await store.start()
    try:
        store.metrics.clock = lambda: T0 + 600  # the samples arrive as they are taken
        await store.insert_metrics([MetricSample(n, t, ts, v) for n, t, ts, v in OLD_ROWS])
        await RollupJob(store.rollup_job, clock=lambda: T0 + 2 * 3600).run_pass()
        store.metrics.clock = lambda: T0 + 2 * 3600
        await store.insert_metrics(
            [
                MetricSample("n1", "cpu", T0 + 30, {"usage_percent": 99.0}),  # late
                MetricSample("n1", "cpu", T0 + 60, {"usage_percent": -1.0}),  # resent, other values
            ]
        )
        assert await _select(url, "SELECT count(*) FROM metric_points") == [(2,)]
        assert (await _select(url, "SELECT count(*) FROM metric_blocks"))[0][0] > 0
        reads = {
            (n, t): [(s.timestamp, s.values) for s in await store.query_metrics(n, t, 0, 2**40)]
            for n, t, _, _ in OLD_ROWS
        }
        count = await store.count_metrics()
        assert count == len(OLD_ROWS) + 1
    finally:
        await store.close()
    postgres = url.startswith("postgresql")
    options = "SELECT reloptions FROM pg_class WHERE relname = 'metric_points'"
    if postgres:
        assert await _select(url, options) == [
            (["autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=10000"],)
        ]
    await _migrate(url, "downgrade", "0012")
    if postgres:
        assert await _select(url, options) == [(None,)]
    points = await _points_table(url)
    assert len(points) == count
    store = SqlStore(url)
    await store.start()  # up again
    try:
        assert await store.count_metrics() == count
        for (n, t), samples in reads.items():
            assert [(s.timestamp, s.values) for s in await store.query_metrics(n, t, 0, 2**40)] == samples
        assert (n1 := reads[("n1", "cpu")])[1] == (T0 + 30, {"usage_percent": 99.0})
        assert n1[2] == (T0 + 60, {"usage_percent": 11.0, "cores": 4.0, "user": 123.45})
    finally:
        await store.close()
