"""The daemon's footprint on a node: memory and CPU of one real daemon at default settings.

A Manager with the fleet CA runs (SQLite by default); the daemon enrolls with a token
(``opsfleet daemon enroll``), then runs with the default config except the Manager's
address and ``--agents`` supervised agents (``tests/programs/forever.py``, a line a
second). Once it registered, every agent runs and ``--warmup`` seconds passed, the daemon
process is sampled for ``--duration`` seconds with psutil: RSS every second (max and
last; USS last) and its CPU time over the window as a percentage of one core. Targets:
RSS <= 40 MiB and CPU <= 0.5 %.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import mib, print_table, verdict
from benchmarks.procs import BenchError, ServerProcess, enrollment_for, free_port, start_manager
from benchmarks.scenarios.common import add_database_arg

RSS_TARGET = 40 * 1024 * 1024
CPU_TARGET = 0.5
AGENT_PROGRAM = Path(__file__).resolve().parents[2] / "tests" / "programs" / "forever.py"
REGISTERED_RE = re.compile(r"registered with manager \S+ as (\S+)")
READY_TIMEOUT = 60.0


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "daemon-footprint",
        help="one daemon at default settings with supervised agents: RSS <= 40 MiB, CPU <= 0.5 %%",
        description=__doc__,
    )
    p.add_argument("--duration", type=float, default=60.0, help="sampling window, seconds (%(default)s)")
    p.add_argument(
        "--warmup", type=float, default=10.0, help="seconds after startup before sampling (%(default)s)"
    )
    p.add_argument("--agents", type=int, default=5, help="supervised agents (%(default)s)")
    add_database_arg(p)
    p.set_defaults(run=run)


def daemon_config(manager_port: int, agents: int) -> str:
    lines = ["manager:", f"  address: 127.0.0.1:{manager_port}", "agents:"]
    for n in range(agents):
        lines += [
            f"  - id: agent-{n}",
            "    type: custom",
            f"    binary_path: {sys.executable}",
            f'    args: ["{AGENT_PROGRAM}", "--interval", "1"]',
        ]
    return "\n".join(lines) + "\n"


def _enroll(workdir: Path, enrollment: tuple[str, str, str], work_dir: Path) -> None:
    address, token, fingerprint = enrollment
    argv = [sys.executable, "-m", "opsfleet", "daemon", "enroll", "--manager", address]
    argv += ["--token", token, "--ca-fingerprint", fingerprint, "--work-dir", str(work_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    (workdir / "enroll.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"daemon enroll failed ({done.returncode}):\n{done.stderr}")


def _wait_ready(daemon: ServerProcess, agents: int) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        text = daemon.log_path.read_text(errors="replace")
        registered = REGISTERED_RE.search(text)
        running = {m for m in re.findall(r"agent (agent-\d+): \w+ -> running", text)}
        if registered and len(running) >= agents:
            return registered.group(1)
        if daemon.popen.poll() is not None:
            raise BenchError(f"the daemon exited with code {daemon.popen.returncode}")
        time.sleep(0.2)
    raise BenchError(f"the daemon did not register with {agents} agents running within {READY_TIMEOUT:.0f}s")


def sample(pid: int, duration: float, interval: float = 1.0) -> dict[str, Any]:
    """RSS every ``interval`` seconds and the CPU time over ``duration`` seconds of process ``pid``."""
    proc = psutil.Process(pid)
    rss: list[int] = []
    cpu_start, wall_start = sum(proc.cpu_times()[:2]), time.monotonic()
    end = wall_start + duration
    while True:
        rss.append(proc.memory_info().rss)
        if time.monotonic() >= end:
            break
        time.sleep(min(interval, max(0.0, end - time.monotonic())))
    cpu_end, wall_end = sum(proc.cpu_times()[:2]), time.monotonic()
    full = proc.memory_full_info()
    return {
        "samples": len(rss),
        "seconds": round(wall_end - wall_start, 2),
        "rss_max": max(rss),
        "rss_last": rss[-1],
        "uss_last": full.uss,
        "threads": proc.num_threads(),
        "cpu_percent": round(100.0 * (cpu_end - cpu_start) / (wall_end - wall_start), 3),
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    enroll_port = free_port()
    db = ScratchDatabase(workdir, args.database_url, keep=args.keep)
    db.create()
    try:
        manager = start_manager(workdir, db.url, enroll_port=enroll_port)
        try:
            node_dir = workdir / "node"
            _enroll(workdir, enrollment_for(manager, enroll_port, 1), node_dir)
            config = workdir / "daemon.yaml"
            config.write_text(daemon_config(manager.port, args.agents))
            argv = [sys.executable, "-m", "opsfleet", "daemon", "--config", str(config)]
            argv += ["--work-dir", str(node_dir), "--listen", "127.0.0.1:0"]
            daemon = ServerProcess.start("daemon", argv, workdir / "daemon.log")
            try:
                node_id = _wait_ready(daemon, args.agents)
                time.sleep(args.warmup)
                if daemon.popen.poll() is not None:
                    raise BenchError(f"the daemon exited with code {daemon.popen.returncode}")
                measured = sample(daemon.pid, args.duration)
            finally:
                daemon.stop()
        finally:
            manager.stop()
    finally:
        db.drop()

    checks = {
        f"rss <= {mib(RSS_TARGET)}": measured["rss_max"] <= RSS_TARGET,
        f"cpu <= {CPU_TARGET} % of one core": measured["cpu_percent"] <= CPU_TARGET,
    }
    print_table(
        f"daemon-footprint: {args.agents} agents, {measured['seconds']:.0f} s sampled "
        f"after {args.warmup:.0f} s warmup, node {node_id}",
        [
            ("daemon rss", f"max {mib(measured['rss_max'])}  last {mib(measured['rss_last'])}"),
            ("daemon uss", mib(measured["uss_last"])),
            ("daemon cpu", f"{measured['cpu_percent']:.3f} % of one core"),
            ("daemon threads", measured["threads"]),
            *[(name, verdict(ok)) for name, ok in checks.items()],
        ],
    )
    return {
        "scenario": "daemon-footprint",
        "database": db.kind,
        "params": {k: getattr(args, k) for k in ("duration", "warmup", "agents")},
        "daemon": measured,
        "targets": {"rss_max": RSS_TARGET, "cpu_percent": CPU_TARGET},
        "checks": checks,
        "passed": all(checks.values()),
    }
