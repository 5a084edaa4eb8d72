"""Target 3: the Manager is stopped (SIGTERM) and restarted on the same database under load.

A fleet runs against a Manager on a fixed port; at ``--restart-at`` seconds the Manager
gets SIGTERM, stays down ``--down`` seconds after it exited, and starts again on the same
database and port. Nodes that hit UNAVAILABLE back off with full jitter and register
again. Measured: the registrations and recoveries (first success after failures) per
second around the restart, how long after the Manager was back the last node recovered,
nodes still failing at the end, and in the database: no node offline, no "offline" event.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import print_table, verdict
from benchmarks.procs import (
    BenchError,
    ServerProcess,
    SimulatorProcess,
    enrollment_for,
    free_port,
    start_manager,
)
from benchmarks.scenarios.common import (
    add_database_arg,
    add_fleet_args,
    add_mtls_arg,
    add_simulator_args,
    fleet_simulator_args,
    run_rows,
    summary,
)
from opsfleet.simulator.report import compact_curve

RECOVER_WITHIN = 60.0


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "restart",
        help="target 3: Manager restart under load: re-registration within 60 s, nobody offline",
        description=__doc__,
    )
    add_fleet_args(p, nodes=20_000, duration=300.0, stagger=60.0)
    p.add_argument("--restart-at", type=float, default=120.0, help="seconds into the run (%(default)s)")
    p.add_argument("--down", type=float, default=0.0, help="seconds the Manager stays stopped (%(default)s)")
    p.add_argument(
        "--recover-within",
        type=float,
        default=RECOVER_WITHIN,
        help="pass mark, seconds after restart (%(default)s)",
    )
    add_simulator_args(p)
    add_database_arg(p)
    add_mtls_arg(p)
    p.set_defaults(run=run)


def _window(points: list[int], start: float, end: float) -> list[int]:
    return points[max(0, math.floor(start)) : max(0, math.ceil(end))]


def _last_nonzero(points: list[int], start: int) -> int | None:
    last = None
    for second in range(max(0, start), len(points)):
        if points[second]:
            last = second
    return last


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if args.restart_at + args.down + args.recover_within > args.duration:
        print(
            f"note: --duration {args.duration:.0f} is shorter than restart-at + down + recover-within; "
            "late recoveries may fall outside the run"
        )
    sim_args = fleet_simulator_args(args)
    port = free_port()
    enroll_port = free_port() if args.mtls else None
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    managers: list[ServerProcess] = []
    try:
        managers.append(start_manager(workdir, db.url, port, label="manager-1", enroll_port=enroll_port))
        if enroll_port is not None:
            sim_args = dataclasses.replace(
                sim_args, enroll=enrollment_for(managers[0], enroll_port, args.nodes)
            )
        sim = SimulatorProcess(sim_args, f"127.0.0.1:{port}", workdir / "sim-restart.json", None)
        try:
            launched = time.time()
            while time.time() < launched + args.restart_at:
                if sim.popen.poll() is not None:
                    raise BenchError("the simulator ended before the restart")
                time.sleep(0.2)
            killed_at = time.time()
            shutdown = managers[0].stop()
            stopped_at = time.time()
            time.sleep(args.down)
            managers.append(start_manager(workdir, db.url, port, label="manager-2", enroll_port=enroll_port))
            back_at = managers[1].listening_at
            report = sim.wait()
        finally:
            sim.kill()
    finally:
        for manager in managers:
            manager.stop()
    try:
        health = db.node_health()
    finally:
        db.drop()

    t0 = report["started_at"]
    kill_s, back_s = killed_at - t0, back_at - t0
    regs, recs = report["curves"]["registrations"], report["curves"]["recoveries"]
    errs = report["curves"]["errors"]
    reregistered = sum(_window(regs, kill_s, len(regs)))
    recovered = sum(_window(recs, kill_s, len(recs)))
    last_reg = _last_nonzero(regs, math.floor(kill_s))
    last_rec = _last_nonzero(recs, math.floor(kill_s))
    last = max((s for s in (last_reg, last_rec) if s is not None), default=None)
    recovery_s = (last + 1 - back_s) if last is not None else 0.0
    checks = {
        f"recovered within {args.recover_within:.0f} s of restart": recovery_s <= args.recover_within,
        "no node failing at the end": report["failing_nodes"] == 0,
        "no node offline": health.offline == 0,
        "no offline event": health.offline_events == 0,
    }
    around = (max(0.0, kill_s - 5), min(len(regs), back_s + args.recover_within + 5))
    offset = math.floor(around[0])
    print_table(
        f"restart{' (mTLS)' if args.mtls else ''}: {args.nodes} nodes, SIGTERM at {kill_s:.1f} s, "
        f"back at {back_s:.1f} s, database {db.kind}",
        [
            *run_rows("manager", report),
            ("manager shutdown (SIGTERM to exit)", f"{shutdown:.2f} s"),
            ("manager down (exit to listening)", f"{back_at - stopped_at:.2f} s"),
            ("manager-2 startup", f"{managers[1].started_in:.2f} s"),
            ("re-registrations after SIGTERM", reregistered),
            ("recoveries after SIGTERM", recovered),
            ("last recovery after restart", f"{recovery_s:.1f} s"),
            ("nodes failing at the end", report["failing_nodes"]),
            (
                "nodes table",
                f"online {health.online}  offline {health.offline}  offline events {health.offline_events}",
            ),
            ("re-registered events (whole run)", health.reregistered_events),
            (
                f"registrations/s {around[0]:.0f}..{around[1]:.0f} s",
                compact_curve(_window(regs, *around), 24, offset),
            ),
            (
                f"recoveries/s    {around[0]:.0f}..{around[1]:.0f} s",
                compact_curve(_window(recs, *around), 24, offset),
            ),
            (
                f"errors/s        {around[0]:.0f}..{around[1]:.0f} s",
                compact_curve(_window(errs, *around), 24, offset),
            ),
            *[(name, verdict(ok)) for name, ok in checks.items()],
        ],
    )
    return {
        "scenario": "restart",
        "database": db.kind,
        "mtls": args.mtls,
        "params": {
            k: getattr(args, k) for k in ("nodes", "duration", "restart_at", "down", "heartbeat_interval")
        },
        "manager": summary(report),
        "sigterm_at_s": round(kill_s, 2),
        "back_at_s": round(back_s, 2),
        "shutdown_s": round(shutdown, 2),
        "restart_startup_s": round(managers[1].started_in, 2),
        "reregistrations": reregistered,
        "recoveries": recovered,
        "recovery_s": round(recovery_s, 2),
        "curve_offset_s": offset,
        "registrations_per_second": _window(regs, *around),
        "recoveries_per_second": _window(recs, *around),
        "errors_per_second": _window(errs, *around),
        "node_health": health.__dict__,
        "checks": checks,
        "passed": all(checks.values()),
    }
