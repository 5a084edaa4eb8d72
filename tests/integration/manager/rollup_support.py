"""Shared by the rollup job tests: a fake clock, sample fleets, and the comparison of stored
and read rollups with a recomputation from the raw samples."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from opsfleet.manager.config import DatabaseSection, resolve_database_url
from opsfleet.manager.domain import MetricSample
from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.store.metric_codec import Rollup, decode_rollup
from opsfleet.manager.store.metric_rollup_mark import RES_1H, RES_5M, RollupMark
from opsfleet.manager.store.schema import metric_rollup_dirty, metric_rollups, node_keys
from opsfleet.manager.store.sql import SqlStore

Stats = tuple[int, dict[str, tuple[float, float, float, int] | None]]
TYPES = ("cpu", "memory")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store_url(database_url: str, tmp_path: Path) -> str:
    return resolve_database_url(DatabaseSection(url=database_url), tmp_path)


async def open_store(url: str, clock: Clock) -> tuple[SqlStore, RollupJob]:
    store = SqlStore(url)
    await store.start()
    store.metrics.clock = clock
    return store, RollupJob(store.rollup_job, clock=clock)


def minute(nodes: list[str], ts: int, seed: int) -> list[MetricSample]:
    """One report per node at ``ts``: values exact in binary, so sums do not depend on order."""
    out = []
    for i, node in enumerate(nodes):
        out.append(MetricSample(node, "cpu", ts, {"usage_percent": float((seed + i) % 97), "cores": 8.0}))
        out.append(MetricSample(node, "memory", ts, {"used_bytes": float(1_000_000 + seed * 3 + i)}))
    return out


async def ingest_minutes(store: SqlStore, clock: Clock, nodes: list[str], t0: int, minutes: int) -> None:
    """``minutes`` reports of ``nodes``, one a minute from ``t0``, each arriving 10 s after its
    samples (``clock`` follows)."""
    for m in range(minutes):
        clock.now = t0 + 60 * m + 10
        await store.insert_metrics(minute(nodes, t0 + 60 * m, m))


def stats(rollup: Rollup) -> Stats:
    return rollup.n, {k: rollup.stats(k) for k in sorted(rollup.keys)}


async def expected(
    store: SqlStore, node: str, type_: str, res: int, start: int, end: int
) -> dict[int, Stats]:
    """The rollups of ``res`` recomputed from the raw samples of [start, end)."""
    out: dict[int, Rollup] = {}
    for s in await store.query_metrics(node, type_, start, end - 1):
        out.setdefault(s.timestamp - s.timestamp % res, Rollup()).add(
            tuple(s.values), list(s.values.values())
        )
    return {b: stats(r) for b, r in out.items()}


async def read(store: SqlStore, node: str, type_: str, res: int, start: int, end: int) -> dict[int, Stats]:
    """What a chart reads: stored rollups up to the watermark, the rest from raw samples."""
    return {b: stats(r) for b, r in await store.metrics.rollups(node, type_, res, start, end - 1)}


async def stored(store: SqlStore) -> dict[tuple[str, str, int, int], Stats]:
    """Every stored rollup row, by (node id, type, resolution, bucket)."""
    metrics = store.metrics
    async with store.engine.connect() as conn:
        await metrics.keys.load(conn, types=True, keysets=True)
        names = {int(k): str(n) for k, n in (await conn.execute(sa.select(node_keys))).all()}
        r = metric_rollups
        rows = (
            await conn.execute(sa.select(r.c.node_key, r.c.type_key, r.c.res, r.c.bucket, r.c.data))
        ).all()
    types = metrics.keys.type_names
    return {
        (names[int(k)], types[int(t)], int(res), int(b)): stats(decode_rollup(bytes(d), metrics.keys.keys_of))
        for k, t, res, b, d in rows
    }


async def node_key(store: SqlStore, node: str) -> int:
    async with store.engine.connect() as conn:
        key = await store.metrics.keys.node_key(conn, node)
    assert key is not None
    return key


async def final_rows_match_raw(store: SqlStore, nodes: list[str], start: int, end: int) -> int:
    """Every final stored rollup of [start, end) equals the recomputation from the raw samples
    and every final bucket with samples has its row; reads of the whole range equal the
    recomputation too. The number of final 5-minute rows compared."""
    async with store.engine.connect() as conn:
        mark = await store.metrics.read_mark(conn) or RollupMark()
    rows = await stored(store)
    compared = 0
    for node in nodes:
        until = mark.stored_until(await node_key(store, node))
        for type_ in TYPES:
            for res in (RES_5M, RES_1H):
                want = await expected(store, node, type_, res, start, end)
                assert await read(store, node, type_, res, start, end) == want, (node, type_, res)
                for bucket, value in want.items():
                    if bucket + res <= until:
                        assert rows.get((node, type_, res, bucket)) == value, (node, type_, res, bucket)
                        compared += res == RES_5M
    return compared


async def dirty_marks(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(metric_rollup_dirty)
        return int((await conn.execute(query)).scalar_one())


async def rollup_rows(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(metric_rollups))).scalar_one())
