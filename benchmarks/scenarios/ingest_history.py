"""Target 4: metric ingestion rate of the store, and history query latency.

Bulk-loads ``--days`` of ``--interval``-second samples (cpu, memory, disk, network, with
the simulator's realistic values) for ``--nodes`` nodes straight through
``SqlStore.insert_metrics`` in batches like the Manager's group commit, time-major as a
fleet would report them, with the store's clock following the samples (each batch arrives
as it would live: no sample is late, the metrics transactions write no rollup). The rollup
job runs between batches as the Manager runs it while samples arrive: after the first batch
that ends in a new simulated hour (with 10 nodes every batch of 5 000 samples, about two
simulated hours), a pass until nothing is due, its clock at the batch's newest samples. It
finalizes the closed buckets and folds their point rows into blocks, so the space of the
deleted rows is reused by the next batches (SQLite's free pages; PostgreSQL once vacuumed: on
PostgreSQL the scenario runs a plain ``VACUUM metric_points`` whenever the job has deleted
``AUTOVACUUM_ROWS`` rows since the last one, where the autovacuum that migration 0013 sets on
the table would start; the server's own autovacuum may run too). A last pass at the end
finalizes the rest. Rates are the samples per second of the insert calls and of the job's
passes. Then times ``SqlStore.query_metrics`` for one node and one type over the last 24 hours and over
the whole ``--query-days`` window; both return every raw row. The charts of the REST API
(``SqlFleetQueries.bucketed_metrics`` with the bucket size the history service picks) are
timed over ``--query-days`` and over a year.

A year of raw ingest would take hours, so for the 1-year chart the scenario writes the
queried node's 1-hour rollup rows before the loaded window directly (one rollup per hour
from the same simulator, 60 samples each), then reads them through the normal query path.
Bytes per row are the database size (measured before that: the SQLite file with its free
pages, PostgreSQL's database with dead rows not vacuumed yet) divided by the samples
loaded; the metric tables' own sizes are reported too.

With ``--remote-write`` every inserted batch is also handed to a Prometheus remote-write
exporter (as the Manager's ingest listener does after each commit), which sends to a local
receiver process (``benchmarks/remote_write_receiver.py``) or the given URL while the load
runs on the same event loop; compare the rates with and without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import mib, print_table
from benchmarks.scenarios.common import add_database_arg
from opsfleet.common.lifecycle import tune_server_gc
from opsfleet.manager.domain import MetricSample
from opsfleet.manager.export.remote_write import NodeInfo, RemoteWriteExporter
from opsfleet.manager.export.sender import HttpSender
from opsfleet.manager.export.settings import RemoteWriteSection
from opsfleet.manager.services.metric_queries import bucket_seconds
from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.store.metric_codec import Rollup, encode_rollup
from opsfleet.manager.store.metrics_sql import RES_1H
from opsfleet.manager.store.queries_sql import SqlFleetQueries
from opsfleet.manager.store.schema import metric_rollups
from opsfleet.manager.store.sql import SqlStore
from opsfleet.simulator.payloads import MachineModel

DAY = 86_400
YEAR = 365 * DAY
PROGRESS_EVERY = 10.0
METRIC_TABLES = (
    "metric_points",
    "metric_blocks",
    "metric_rollups",
    "metric_latest",
    "metric_keysets",
    "node_keys",
)
AUTOVACUUM_ROWS = 10_000
"""``autovacuum_vacuum_threshold`` of ``metric_points`` (migration 0013, scale factor 0)."""


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "ingest-history",
        help="target 4: samples/s into the store; 24 h and 30-day history queries",
        description=__doc__,
    )
    p.add_argument("--nodes", type=int, default=100, help="nodes with history (%(default)s)")
    p.add_argument("--days", type=float, default=30.0, help="days of history per node (%(default)s)")
    p.add_argument("--interval", type=int, default=60, help="seconds between samples (%(default)s)")
    p.add_argument("--types", default="cpu,memory,disk,network", help="metric types stored (%(default)s)")
    p.add_argument("--batch", type=int, default=5000, help="rows per insert_metrics call (%(default)s)")
    p.add_argument("--query-type", default="cpu", help="metric type queried (%(default)s)")
    p.add_argument("--query-days", type=float, default=30.0, help="the long query's window (%(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions of each query (%(default)s)")
    p.add_argument(
        "--remote-write",
        metavar="URL",
        help="also export every sample by Prometheus remote write to URL, or 'local' for a receiver "
        "process started by the benchmark (default: no export)",
    )
    add_database_arg(p)
    p.set_defaults(run=run)


RECEIVER_SCRIPT = Path(__file__).resolve().parents[1] / "remote_write_receiver.py"
DRAIN_TIMEOUT = 300.0


def _start_receiver() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(RECEIVER_SCRIPT)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"remote-write receiver did not start: {line!r}")
    return proc, f"http://{line.removeprefix('listening on ')}/api/v1/write"


async def _exporter(url: str) -> RemoteWriteExporter:
    settings = RemoteWriteSection(url=url)

    async def lookup(node_id: str) -> NodeInfo:
        return f"host-{node_id}", {"env": "bench"}

    exporter = RemoteWriteExporter(settings, HttpSender(settings), lookup=lookup)
    await exporter.start()
    return exporter


async def _drain(exporter: RemoteWriteExporter) -> dict[str, Any]:
    """Wait (untimed) until the exporter's queue is empty, stop it; its counts."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(exporter.wait_idle(), DRAIN_TIMEOUT)
    await exporter.stop()
    s = exporter.stats
    return {"sent": s.sent, "failed": s.failed, "dropped": s.dropped, "requests": s.requests}


async def _load(
    store: SqlStore, args: argparse.Namespace, end: int, exporter: RemoteWriteExporter | None = None
) -> dict[str, Any]:
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    steps = int(args.days * DAY) // args.interval
    start = end - (steps - 1) * args.interval
    node_ids = [f"hist-{i:04d}" for i in range(args.nodes)]
    models = [MachineModel(random.Random(i), float(start)) for i in range(args.nodes)]
    total_rows = steps * args.nodes * len(types)
    print(
        f"loading {total_rows} rows ({args.nodes} nodes x {steps} samples x {len(types)} types)",
        file=sys.stderr,
    )
    batch: list[MetricSample] = []
    rows = 0
    insert_s = 0.0
    clock = [float(start)]
    store.metrics.clock = lambda: clock[0]
    job = RollupJob(store.rollup_job, clock=lambda: clock[0])
    await job.run_pass()  # the watermark starts here
    steady = _JobRuns(store, job)
    began = last_note = time.perf_counter()
    for ts in range(start, end + 1, args.interval):
        for node_id, model in zip(node_ids, models, strict=True):
            sample = model.sample(float(ts))
            batch.extend(MetricSample(node_id, t, ts, sample.get(t, {"value": 1.0})) for t in types)
        if len(batch) >= args.batch:
            clock[0] = batch[0].timestamp + 5.0  # the batch's oldest samples are not late yet
            t = time.perf_counter()
            await store.insert_metrics(batch)
            insert_s += time.perf_counter() - t
            if exporter is not None:
                exporter.samples_committed("", batch)
            rows += len(batch)
            if batch[-1].timestamp // 3600 > steady.hour:
                clock[0] = batch[-1].timestamp + 5.0  # the job runs as the newest samples arrive
                await steady.run(batch[-1].timestamp // 3600)
            batch = []
            if time.perf_counter() - last_note > PROGRESS_EVERY:
                last_note = time.perf_counter()
                print(
                    f"  {rows}/{total_rows} rows, {rows / insert_s:.0f} rows/s in insert_metrics",
                    file=sys.stderr,
                )
    if batch:
        clock[0] = batch[0].timestamp + 5.0
        t = time.perf_counter()
        await store.insert_metrics(batch)
        insert_s += time.perf_counter() - t
        if exporter is not None:
            exporter.samples_committed("", batch)
        rows += len(batch)
    clock[0] = end + 300.0
    await steady.run(end // 3600 + 1)
    wall = time.perf_counter() - began
    return {
        "rows": rows,
        "first_ts": start,
        "last_ts": end,
        "insert_seconds": round(insert_s, 2),
        "wall_seconds": round(wall, 2),
        "rows_per_s_insert": round(rows / insert_s, 1) if insert_s else 0.0,
        "rows_per_s_wall": round(rows / wall, 1) if wall else 0.0,
        "late_marked": store.metrics.late_marked,
        "rollup_job": {
            "passes": steady.passes,
            "samples": steady.samples,
            "points": steady.points,
            "steps": steady.steps,
            "buckets_5m": steady.buckets,
            "folded": steady.folded,
            "vacuums": steady.vacuums,
            "seconds": round(steady.seconds, 2),
            "samples_per_s": round(steady.samples / steady.seconds, 1) if steady.seconds else 0.0,
        },
        "node_ids": node_ids,
    }


class _JobRuns:
    """The rollup job's passes during the load, and PostgreSQL's vacuum of the folded rows."""

    def __init__(self, store: SqlStore, job: RollupJob) -> None:
        self.store = store
        self.job = job
        self.hour = 0
        self.passes = self.samples = self.points = self.steps = self.buckets = self.folded = 0
        self.vacuums = 0
        self.seconds = 0.0
        self._dead = 0

    async def run(self, hour: int) -> None:
        self.hour = hour
        result = await self.job.run_pass()
        self.passes += 1
        self.samples += result.samples
        self.points += result.points
        self.steps += result.steps
        self.buckets += result.buckets
        self.folded += result.folded
        self.seconds += result.seconds
        self._dead += result.folded
        if self.store.dialect == "postgresql" and self._dead >= AUTOVACUUM_ROWS:
            async with self.store.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.exec_driver_sql("VACUUM metric_points")
            self.vacuums += 1
            self._dead = 0


async def _time_query(
    store: SqlStore, node_id: str, type_: str, start: int, end: int, repeat: int
) -> dict[str, Any]:
    t = time.perf_counter()
    rows = len(await store.query_metrics(node_id, type_, start, end))
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await store.query_metrics(node_id, type_, start, end)
        times.append(time.perf_counter() - t)
    return {
        "rows": rows,
        "first_ms": round(first * 1000, 1),
        "min_ms": round(min(times) * 1000, 1) if times else None,
        "median_ms": round(statistics.median(times) * 1000, 1) if times else None,
        "max_ms": round(max(times) * 1000, 1) if times else None,
    }


async def _measure(db: ScratchDatabase, args: argparse.Namespace) -> dict[str, Any]:
    store = SqlStore(db.async_url)
    await store.start()
    receiver: subprocess.Popen[str] | None = None
    export: dict[str, Any] | None = None
    try:
        exporter = None
        if args.remote_write:
            url = args.remote_write
            if url == "local":
                receiver, url = _start_receiver()
            exporter = await _exporter(url)
        end = int(time.time()) // args.interval * args.interval
        load = await _load(store, args, end, exporter)
        load["stored"] = await store.count_metrics()  # points and blocks: none lost, none twice
        if exporter is not None:
            export = await _drain(exporter)
        node = load.pop("node_ids")[0]
        day = await _time_query(store, node, args.query_type, end - DAY, end, args.repeat)
        long_start = end - int(args.query_days * DAY)
        long = await _time_query(store, node, args.query_type, long_start, end, args.repeat)
        queries = SqlFleetQueries(store)
        bucketed = await _time_chart(queries, node, args.query_type, long_start, end, args.repeat)
        tables = await _table_sizes(store)
    finally:
        await store.close()
        if receiver is not None:
            receiver.terminate()
            receiver.wait(10)
    return {
        "remote_write": export,
        "load": load,
        "query_24h": day,
        "query_long": long,
        "query_long_bucketed": bucketed,
        "queried_node": node,
        "end": end,
        "table_bytes": tables,
    }


async def _measure_year(db: ScratchDatabase, args: argparse.Namespace, node: str, end: int) -> dict[str, Any]:
    """Write a year of 1-hour rollups for ``node`` before the loaded window, time the 1-year chart."""
    store = SqlStore(db.async_url)
    await store.start()
    try:
        first_loaded = end - int(args.days * DAY)
        start = end - YEAR
        metrics = store.metrics
        async with store.engine.connect() as conn:
            node_key = await metrics.keys.node_key(conn, node)
            type_key = await metrics.keys.type_key(conn, args.query_type)
            await metrics.keys.load(conn, keysets=True)
        model = MachineModel(random.Random(7), float(start))
        rows = []
        for hour in range(start - start % RES_1H, first_loaded - RES_1H, RES_1H):
            values = model.sample(float(hour)).get(args.query_type, {"value": 1.0})
            keys, vals = tuple(values), list(values.values())
            rollup = Rollup(keys, 60, [60] * len(keys), [v * 60 for v in vals], vals, vals)
            keyset = metrics.keys.keysets.get(keys, 0)
            data = encode_rollup(keyset, rollup)
            rows.append(
                {"node_key": node_key, "type_key": type_key, "res": RES_1H, "bucket": hour, "data": data}
            )
        async with store.write_tx(changes_rows=True) as conn:
            for i in range(0, len(rows), 2000):
                await conn.execute(metric_rollups.insert(), rows[i : i + 2000])
        year = await _time_chart(SqlFleetQueries(store), node, args.query_type, start, end, args.repeat)
    finally:
        await store.close()
    return {**year, "rollup_rows_written": len(rows)}


async def _time_chart(
    queries: SqlFleetQueries, node_id: str, type_: str, start: int, end: int, repeat: int
) -> dict[str, Any]:
    """Time the REST API's chart query: buckets sized by the history service, from the rollups."""
    bucket = bucket_seconds(end - start)
    times = []
    rows = 0
    for _ in range(repeat + 1):
        t = time.perf_counter()
        rows = len(await queries.bucketed_metrics(node_id, type_, start, end, bucket))
        times.append(time.perf_counter() - t)
    return {
        "rows": rows,
        "bucket_seconds": bucket,
        "first_ms": round(times[0] * 1000, 1),
        "min_ms": round(min(times[1:] or times) * 1000, 1),
        "median_ms": round(statistics.median(times[1:] or times) * 1000, 1),
        "max_ms": round(max(times[1:] or times) * 1000, 1),
    }


async def _table_sizes(store: SqlStore) -> dict[str, int]:
    """Bytes of each metric table with its indexes (SQLite ``dbstat``, PostgreSQL relation sizes)."""
    out: dict[str, int] = {}
    async with store.engine.connect() as conn:
        for table in METRIC_TABLES:
            if store.dialect == "postgresql":
                sql = sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))")
            else:
                sql = sa.text("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = :t")
            out[table] = int((await conn.execute(sql, {"t": table})).scalar_one())
        if store.dialect != "postgresql":
            pages = (await conn.exec_driver_sql("PRAGMA freelist_count")).scalar_one()
            size = (await conn.exec_driver_sql("PRAGMA page_size")).scalar_one()
            out["free pages"] = int(pages) * int(size)
    return out


def _query_row(q: dict[str, Any]) -> str:
    return (
        f"{q['rows']} rows: first {q['first_ms']} ms, then min {q['min_ms']} / median {q['median_ms']} / "
        f"max {q['max_ms']} ms"
    )


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    # The store runs in this process: give it the Manager's collector settings, as the
    # Manager serving the REST API's charts has (like with like).
    tune_server_gc()
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    try:
        results = asyncio.run(_measure(db, args))
        size = db.size_bytes()
        results["query_year"] = asyncio.run(_measure_year(db, args, results["queried_node"], results["end"]))
    finally:
        db.drop()
    load = results["load"]
    job = load["rollup_job"]
    bucketed = results["query_long_bucketed"]
    export = results["remote_write"]
    export_row = (
        f"{export['sent']} sent, {export['failed']} failed, {export['dropped']} dropped "
        f"in {export['requests']} requests"
        if export
        else "off"
    )
    year = results["query_year"]
    tables = results["table_bytes"]
    rows = max(1, load["rows"])
    print_table(
        f"ingest-history: {args.nodes} nodes x {args.days:g} days of {args.interval} s samples, "
        f"types {args.types}, database {db.kind}",
        [
            ("rows loaded", f"{load['rows']} ({load['stored']} stored: count_metrics)"),
            ("remote write (series samples)", export_row),
            ("insert_metrics rate", f"{load['rows_per_s_insert']:.0f} samples/s (batches of {args.batch})"),
            (
                "load rate incl. generation",
                f"{load['rows_per_s_wall']:.0f} samples/s ({load['wall_seconds']} s, "
                f"{load['late_marked']} dirty marks)",
            ),
            (
                "rollup job (between batches)",
                f"{job['samples_per_s']:.0f} samples/s ({job['samples']} samples, {job['passes']} passes, "
                f"{job['steps']} steps, {job['seconds']} s; {job['folded']} point rows folded, "
                f"{job['vacuums']} vacuums)",
            ),
            ("database size", f"{mib(size)} ({size / rows:.1f} B per sample)"),
            (
                "metric tables",
                ", ".join(f"{t} {mib(b)}" for t, b in tables.items() if b)
                + f" (points {tables['metric_points'] / rows:.1f} B, blocks "
                f"{tables['metric_blocks'] / rows:.1f} B, rollups "
                f"{tables['metric_rollups'] / rows:.1f} B per sample)",
            ),
            (f"query 24 h ({args.query_type}, one node)", _query_row(results["query_24h"])),
            (f"query {args.query_days:g} d ({args.query_type}, one node)", _query_row(results["query_long"])),
            (
                f"chart {args.query_days:g} d (rollups)",
                _query_row(bucketed) + f" ({bucketed['bucket_seconds']} s buckets)",
            ),
            ("chart 1 year (1-hour rollups)", _query_row(year) + f" ({year['bucket_seconds']} s buckets)"),
        ],
    )
    return {
        "scenario": "ingest-history",
        "database": db.kind,
        "params": {
            k: getattr(args, k)
            for k in ("nodes", "days", "interval", "types", "batch", "query_days", "remote_write")
        },
        "database_bytes": size,
        "bytes_per_sample": round(size / rows, 1),
        **results,
    }
