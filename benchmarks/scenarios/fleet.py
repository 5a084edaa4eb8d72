"""Target 2: a realistic fleet (N nodes, heartbeat 10 s, metrics 60 s) for T seconds.

Measured: latency p50/p99/max per method, errors by status code, the Manager's CPU and
RSS (sampled every second), and afterwards the nodes table (every node online).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import mib, print_table, verdict
from benchmarks.procs import run_simulator, start_manager
from benchmarks.scenarios.common import (
    add_database_arg,
    add_fleet_args,
    add_simulator_args,
    fleet_simulator_args,
    run_rows,
    summary,
)

STEADY_METHODS = ("Heartbeat", "ReportMetrics", "SyncAgentStates")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "fleet", help="target 2: N nodes for T seconds: p99, errors, RSS bound", description=__doc__
    )
    add_fleet_args(p, nodes=20_000, duration=300.0, stagger=60.0)
    p.add_argument(
        "--p99-ms", type=float, default=250.0, help="pass mark for heartbeat/metrics/sync p99 (%(default)s)"
    )
    p.add_argument(
        "--rss-mib", type=float, default=1024.0, help="pass mark for the Manager's peak RSS (%(default)s)"
    )
    add_simulator_args(p)
    add_database_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sim = fleet_simulator_args(args)
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    try:
        manager = start_manager(workdir, db.url)
        try:
            report = run_simulator(sim, f"127.0.0.1:{manager.port}", workdir / "sim-fleet.json", manager.pid)
        finally:
            shutdown = manager.stop()
        health = db.node_health()
    finally:
        db.drop()
    errors = sum(report["errors_by_code"].values())
    p99 = {m["method"]: m["p99_ms"] for m in report["methods"]}
    worst = max((p99.get(m, 0.0) for m in STEADY_METHODS), default=0.0)
    rss = (report.get("manager") or {}).get("rss_max", 0)
    checks = {
        "no errors": errors == 0,
        f"p99 <= {args.p99_ms:.0f} ms": worst <= args.p99_ms,
        f"rss <= {args.rss_mib:.0f} MiB": rss <= args.rss_mib * 1024 * 1024,
        "all nodes online": health.offline == 0 and health.online == args.nodes,
    }
    print_table(
        f"fleet: {args.nodes} nodes, heartbeat {args.heartbeat_interval:.0f} s, "
        f"metrics {args.metrics_interval:.0f} s, {args.duration:.0f} s, database {db.kind}",
        [
            *run_rows("manager", report),
            ("registered nodes", f"{report['registered_nodes']}/{args.nodes}"),
            (
                "nodes table",
                f"online {health.online}  offline {health.offline}  offline events {health.offline_events}",
            ),
            ("manager startup / shutdown", f"{manager.started_in:.1f} s / {shutdown:.1f} s"),
            ("manager peak rss", mib(rss)),
            *[(name, verdict(ok)) for name, ok in checks.items()],
        ],
    )
    return {
        "scenario": "fleet",
        "database": db.kind,
        "params": {
            k: getattr(args, k) for k in ("nodes", "duration", "heartbeat_interval", "metrics_interval")
        },
        "manager": summary(report),
        "registrations_per_second": report["curves"]["registrations"],
        "node_health": health.__dict__,
        "manager_startup_s": round(manager.started_in, 2),
        "manager_shutdown_s": round(shutdown, 2),
        "checks": checks,
        "passed": all(checks.values()),
    }
