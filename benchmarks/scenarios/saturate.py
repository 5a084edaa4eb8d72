"""Target 1: the Manager's maximum throughput as a share of a bare gRPC server's.

The same saturate-mode simulator run goes first against ``baseline_server.py`` (empty
handlers, same server options), then against ``opsfleet manager`` on a fresh database.
The ratio of their calls/s is the result; the target is >= 0.70.

With ``--mtls`` both servers speak mutual TLS with the same fleet CA: the Manager is
started first (it creates the CA in its data directory), the baseline gets a server
certificate issued by that CA and requires client certificates from it, and the simulated
nodes enroll through the Manager (one token for both runs, node ids prefixed ``base-`` for
the baseline run) and use their enrolled certificates on their own connections to either
server. Enrollment happens in the registration phase, which the throughput leaves out.
During the baseline run the Manager is up but idle (it only answers the Enroll calls).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import print_table, verdict
from benchmarks.procs import (
    SimulatorArgs,
    enrollment_for,
    fleet_ca_dir,
    free_port,
    run_simulator,
    start_baseline,
    start_manager,
)
from benchmarks.scenarios.common import add_database_arg, add_mtls_arg, add_simulator_args, run_rows, summary

TARGET_RATIO = 0.70


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
    add_mtls_arg(p)
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


def _plaintext(args: argparse.Namespace, workdir: Path, db: ScratchDatabase) -> tuple[Any, Any]:
    sim = simulator_args(args)
    baseline = start_baseline(workdir)
    try:
        base = run_simulator(sim, f"127.0.0.1:{baseline.port}", workdir / "sim-baseline.json", baseline.pid)
    finally:
        baseline.stop()
    manager = start_manager(workdir, db.url)
    try:
        mgr = run_simulator(sim, f"127.0.0.1:{manager.port}", workdir / "sim-manager.json", manager.pid)
    finally:
        manager.stop()
    return base, mgr


def _mtls(args: argparse.Namespace, workdir: Path, db: ScratchDatabase) -> tuple[Any, Any]:
    enroll_port = free_port()
    manager = start_manager(workdir, db.url, enroll_port=enroll_port)
    try:
        sim = dataclasses.replace(
            simulator_args(args), enroll=enrollment_for(manager, enroll_port, 2 * args.nodes)
        )
        baseline = start_baseline(workdir, ca_dir=fleet_ca_dir(workdir))
        try:
            base = run_simulator(
                dataclasses.replace(sim, node_prefix="base-"),
                f"127.0.0.1:{baseline.port}",
                workdir / "sim-baseline.json",
                baseline.pid,
            )
        finally:
            baseline.stop()
        mgr = run_simulator(sim, f"127.0.0.1:{manager.port}", workdir / "sim-manager.json", manager.pid)
    finally:
        manager.stop()
    return base, mgr


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    try:
        base, mgr = (_mtls if args.mtls else _plaintext)(args, workdir, db)
    finally:
        db.drop()
    ratio = mgr["calls_per_s"] / base["calls_per_s"] if base["calls_per_s"] else 0.0
    passed = ratio >= args.target_ratio
    print_table(
        f"saturate{' (mTLS)' if args.mtls else ''}: {args.nodes} nodes, {args.duration:.0f} s per run, "
        f"inflight {args.inflight}, "
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
        "mtls": args.mtls,
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
