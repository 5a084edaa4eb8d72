"""Central configuration: a new policy revision selecting every node of a simulated fleet.

A fleet runs (heartbeat ``--heartbeat-interval``); once every node has registered and had
its first heartbeat, a policy selecting all nodes (``selector: {}``) is written through the
REST API. Each simulated node fetches it with GetConfig when its next HeartbeatResponse
carries the new config hash. Measured: the time from the write until the last node fetched
it (target: one heartbeat interval + 10 s), how many nodes fetched it, GetConfig latency,
and the Manager's CPU while the revision spreads.

With ``--mtls`` the Manager runs with the fleet CA: every simulated node enrolls first (in
the stagger) and then heartbeats and fetches its configuration over its own mTLS connection.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import print_table, verdict
from benchmarks.procs import (
    BENCH_ADMIN_PASSWORD,
    BenchError,
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

HTTP_RE = re.compile(r"HTTP listening on \S+:(\d+)")
POLICY = {
    "name": "bench-all",
    "selector": {},
    "priority": 1,
    "config": {
        "agents": [{"id": "bench-agent", "binary_path": "/usr/bin/true", "args": ["--bench"]}],
        "collectors": {"cpu": {"interval": "30s"}},
    },
}


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "config-rollout",
        help="central config: a revision for every node; time until all fetched it, GetConfig p99",
        description=__doc__,
    )
    add_fleet_args(p, nodes=20_000, duration=0.0, stagger=60.0)
    p.set_defaults(heartbeat_interval=30.0)
    p.add_argument(
        "--slack", type=float, default=10.0, help="pass mark: heartbeat interval + this (%(default)s s)"
    )
    add_simulator_args(p)
    add_database_arg(p)
    add_mtls_arg(p)
    p.set_defaults(run=run)


def _http_port(log: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = HTTP_RE.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        time.sleep(0.1)
    raise BenchError("the manager did not report its HTTP port")


def _apply_policy(http_port: int) -> float:
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}/api/v1", timeout=30) as api:
        login = api.post("/auth/login", json={"username": "admin", "password": BENCH_ADMIN_PASSWORD})
        login.raise_for_status()
        token = login.json()["data"]["token"]
        written = time.time()
        answer = api.post("/policies", json=POLICY, headers={"Authorization": f"Bearer {token}"})
        answer.raise_for_status()
    return written


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    apply_after = args.stagger + args.heartbeat_interval + 5.0
    if not args.duration:
        args.duration = apply_after + args.heartbeat_interval + args.slack + 15.0
    sim_args = fleet_simulator_args(args)
    config = workdir / "manager.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"auth:\n  admin_password: {BENCH_ADMIN_PASSWORD}\n")
    enroll_port = free_port() if args.mtls else None
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    try:
        manager = start_manager(workdir, db.url, extra=["--config", str(config)], enroll_port=enroll_port)
        try:
            http_port = _http_port(manager.log_path)
            if enroll_port is not None:
                sim_args = dataclasses.replace(
                    sim_args, enroll=enrollment_for(manager, enroll_port, args.nodes)
                )
            sim = SimulatorProcess(
                sim_args, f"127.0.0.1:{manager.port}", workdir / "sim-config.json", manager.pid
            )
            try:
                launched = time.time()
                while time.time() < launched + apply_after:
                    if sim.popen.poll() is not None:
                        raise BenchError("the simulator ended before the policy was written")
                    time.sleep(0.2)
                written = _apply_policy(http_port)
                report = sim.wait()
            finally:
                sim.kill()
        finally:
            manager.stop()
    finally:
        db.drop()

    t0 = report["started_at"]
    write_s = written - t0
    fetches = report["curves"].get("config_fetches", [])
    after = fetches[int(write_s) :] if write_s < len(fetches) else []
    fetched = sum(after)
    last = max((i for i, n in enumerate(after) if n), default=None)
    spread_s = (int(write_s) + last + 1 - write_s) if last is not None else float("inf")
    window = [
        s["cpu_percent"]
        for s in report.get("manager_samples", [])
        if write_s <= s["t"] <= write_s + max(spread_s, 1.0) + 1
    ]
    cpu_mean = sum(window) / len(window) if window else 0.0
    cpu_max = max(window, default=0.0)
    get_config = next((m for m in report["methods"] if m["method"] == "GetConfig"), None)
    target = args.heartbeat_interval + args.slack
    checks = {
        "every node fetched the revision": fetched >= args.nodes,
        f"all fetched within {target:.0f} s": spread_s <= target,
        "no GetConfig errors": bool(get_config) and get_config["errors"] == 0,
    }
    print_table(
        f"config-rollout{' (mTLS)' if args.mtls else ''}: {args.nodes} nodes, "
        f"heartbeat {args.heartbeat_interval:.0f} s, "
        f"policy written at {write_s:.1f} s, database {db.kind}",
        [
            *run_rows("manager", report),
            ("nodes that fetched the revision", f"{fetched}/{args.nodes}"),
            ("write -> last node fetched", f"{spread_s:.1f} s"),
            ("manager cpu while spreading", f"mean {cpu_mean:.0f}%  max {cpu_max:.0f}%"),
            *[(name, verdict(ok)) for name, ok in checks.items()],
        ],
    )
    return {
        "scenario": "config-rollout",
        "database": db.kind,
        "mtls": args.mtls,
        "params": {k: getattr(args, k) for k in ("nodes", "duration", "heartbeat_interval", "stagger")},
        "manager": summary(report),
        "policy_written_at_s": round(write_s, 2),
        "fetched": fetched,
        "spread_s": round(spread_s, 2),
        "manager_cpu_while_spreading": {"mean": round(cpu_mean, 1), "max": cpu_max},
        "get_config": get_config,
        "checks": checks,
        "passed": all(checks.values()),
    }
