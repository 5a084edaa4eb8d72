"""Target 1: the Manager's maximum throughput as a share of a bare gRPC server's.

The same saturate-mode simulator run goes first against ``baseline_server.py`` (empty
handlers, same server options), then against ``opsfleet manager`` on a fresh database.
The ratio of their calls/s is the result; the target is >= 0.60.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import print_table, verdict
from benchmarks.procs import SimulatorArgs, run_simulator, start_baseline, start_manager
from benchmarks.scenarios.common import add_database_arg, add_simulator_args, run_rows, summary

TARGET_RATIO = 0.60


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "saturate", help="target 1: Manager calls/s vs a bare gRPC server (>= 60 %%)", description=__doc__
    )
    p.add_argument("--nodes", type=int, default=1000, help="simulated nodes (%(default)s)")
    p.add_argument("--duration", type=float, default=30.0, help="each simulator run, seconds (%(default)s)")
    p.add_argument("--inflight", type=int, default=64, help="calls in flight at once (%(default)s)")
    p.add_argument("--target-ratio", type=float, default=TARGET_RATIO, help="pass mark (%(default)s)")
    add_simulator_args(p)
    add_database_arg(p)
    p.set_defaults(run=run)


def simulator_args(args: argparse.Namespace) -> SimulatorArgs:
    return SimulatorArgs(
        mode="saturate",
        nodes=args.nodes,
        duration=args.duration,
        workers=args.workers,
        channels=args.channels,
        inflight=args.inflight,
        progress_interval=args.progress_interval,
    )


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sim = simulator_args(args)
    baseline = start_baseline(workdir)
    try:
        base = run_simulator(sim, f"127.0.0.1:{baseline.port}", workdir / "sim-baseline.json", baseline.pid)
    finally:
        baseline.stop()
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    try:
        manager = start_manager(workdir, db.url)
        try:
            mgr = run_simulator(sim, f"127.0.0.1:{manager.port}", workdir / "sim-manager.json", manager.pid)
        finally:
            manager.stop()
    finally:
        db.drop()
    ratio = mgr["calls_per_s"] / base["calls_per_s"] if base["calls_per_s"] else 0.0
    passed = ratio >= args.target_ratio
    print_table(
        f"saturate: {args.nodes} nodes, {args.duration:.0f} s per run, inflight {args.inflight}, "
        f"database {db.kind}",
        [
            *run_rows("baseline", base),
            *run_rows("manager", mgr),
            ("ratio manager/baseline", f"{ratio:.3f}  target >= {args.target_ratio:.2f}: {verdict(passed)}"),
        ],
    )
    return {
        "scenario": "saturate",
        "database": db.kind,
        "params": {
            "nodes": args.nodes,
            "duration": args.duration,
            "inflight": args.inflight,
            "workers": args.workers,
        },
        "baseline": summary(base),
        "manager": summary(mgr),
        "ratio": round(ratio, 4),
        "target_ratio": args.target_ratio,
        "passed": passed,
    }
