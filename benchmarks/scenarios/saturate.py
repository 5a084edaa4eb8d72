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

With ``--repeat N`` the pair runs N times in turn (baseline, Manager, baseline, ...), each
round in its own directory on a fresh database: on a shared machine one pair's ratio
follows whatever else ran during it, so the result is the median of the rounds' ratios
(every round's ratio is printed and saved; the tables are those of the median round).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path
from typing import Any

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import print_table, verdict
from benchmarks.procs import (
    BenchError,
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
        "saturate", help="target 1: Manager calls/s vs a bare gRPC server (>= 70 %%)", description=__doc__
    )
    p.add_argument("--nodes", type=int, default=1000, help="simulated nodes (%(default)s)")
    p.add_argument("--duration", type=float, default=30.0, help="each simulator run, seconds (%(default)s)")
    p.add_argument("--inflight", type=int, default=64, help="calls in flight at once (%(default)s)")
    p.add_argument("--target-ratio", type=float, default=TARGET_RATIO, help="pass mark (%(default)s)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="baseline/Manager pairs run in turn; the result is the median ratio (%(default)s)",
    )
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


def _round(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """One baseline run and one Manager run on a fresh database: (baseline, manager, db kind)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    try:
        base, mgr = (_mtls if args.mtls else _plaintext)(args, workdir, db)
    finally:
        db.drop()
    return base, mgr, db.kind


def _ratio(base: dict[str, Any], mgr: dict[str, Any]) -> float:
    return float(mgr["calls_per_s"] / base["calls_per_s"]) if base["calls_per_s"] else 0.0


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if args.repeat < 1:
        raise BenchError("saturate: --repeat must be at least 1")
    rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
    kind = ""
    for n in range(args.repeat):
        if args.repeat > 1:
            print(f"[saturate] round {n + 1} of {args.repeat}", flush=True)
        base, mgr, kind = _round(args, workdir if args.repeat == 1 else workdir / f"round-{n + 1}")
        rounds.append((base, mgr))
        if args.repeat > 1:
            print(f"[saturate] round {n + 1}: ratio {_ratio(base, mgr):.3f}", flush=True)
    ratios = [_ratio(base, mgr) for base, mgr in rounds]
    ratio = statistics.median(ratios)
    # The tables show the round whose ratio is the median (the lower middle one of an even count).
    middle = sorted(range(len(ratios)), key=ratios.__getitem__)[(len(ratios) - 1) // 2]
    base, mgr = rounds[middle]
    passed = ratio >= args.target_ratio
    spread = [] if len(ratios) == 1 else [("ratio of each round", ", ".join(f"{r:.3f}" for r in ratios))]
    print_table(
        f"saturate{' (mTLS)' if args.mtls else ''}: {args.nodes} nodes, {args.duration:.0f} s per run, "
        f"inflight {args.inflight}, "
        f"database {kind}"
        + (f", median of {len(ratios)} rounds (round {middle + 1} shown)" if spread else ""),
        [
            *run_rows("baseline", base),
            *run_rows("manager", mgr),
            *spread,
            ("ratio manager/baseline", f"{ratio:.3f}  target >= {args.target_ratio:.2f}: {verdict(passed)}"),
        ],
    )
    return {
        "scenario": "saturate",
        "database": kind,
        "mtls": args.mtls,
        "params": {
            "nodes": args.nodes,
            "duration": args.duration,
            "inflight": args.inflight,
            "workers": args.workers,
            "repeat": args.repeat,
        },
        "baseline": summary(base),
        "manager": summary(mgr),
        "rounds": [
            {
                "ratio": round(r, 4),
                "baseline_calls_per_s": b["calls_per_s"],
                "manager_calls_per_s": m["calls_per_s"],
            }
            for r, (b, m) in zip(ratios, rounds, strict=True)
        ],
        "ratio": round(ratio, 4),
        "target_ratio": args.target_ratio,
        "passed": passed,
    }
