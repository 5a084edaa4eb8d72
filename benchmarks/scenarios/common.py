"""Flags shared by the scenarios that drive the simulator."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.output import method_rows, process_rows
from benchmarks.procs import SimulatorArgs


def add_database_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL instead of a fresh SQLite file, e.g. "
        "postgresql://postgres@127.0.0.1:5432/opsfleet_bench; that database is dropped and re-created, "
        "so its name must contain 'bench'",
    )


def add_simulator_args(p: argparse.ArgumentParser, *, workers: int = 2, channels: int = 4) -> None:
    p.add_argument("--workers", type=int, default=workers, help="simulator worker processes (%(default)s)")
    p.add_argument("--channels", type=int, default=channels, help="gRPC connections per worker (%(default)s)")
    p.add_argument(
        "--progress-interval", type=float, default=5.0, help="simulator progress lines (%(default)s s)"
    )


def add_mtls_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mtls",
        action="store_true",
        help="Manager with the fleet CA: every simulated node enrolls and uses its own mTLS connection "
        "(default: the Manager runs with --insecure)",
    )


def add_fleet_args(p: argparse.ArgumentParser, *, nodes: int, duration: float, stagger: float) -> None:
    p.add_argument("--nodes", type=int, default=nodes, help="simulated nodes (%(default)s)")
    p.add_argument("--duration", type=float, default=duration, help="simulator run, seconds (%(default)s)")
    p.add_argument("--heartbeat-interval", type=float, default=10.0, help="seconds (%(default)s)")
    p.add_argument("--metrics-interval", type=float, default=60.0, help="seconds (%(default)s)")
    p.add_argument("--sync-interval", type=float, default=300.0, help="seconds (%(default)s)")
    p.add_argument(
        "--stagger", type=float, default=stagger, help="first registrations spread over (%(default)s s)"
    )


def fleet_simulator_args(args: argparse.Namespace) -> SimulatorArgs:
    """The simulator run described by ``add_fleet_args`` + ``add_simulator_args`` flags."""
    return SimulatorArgs(
        mode="fleet",
        nodes=args.nodes,
        duration=args.duration,
        workers=args.workers,
        channels=args.channels,
        heartbeat_interval=args.heartbeat_interval,
        metrics_interval=args.metrics_interval,
        sync_interval=args.sync_interval,
        stagger=args.stagger,
        progress_interval=args.progress_interval,
    )


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of a simulator report that go into a scenario's results (curves left out)."""
    keep = (
        "mode",
        "nodes",
        "registered_nodes",
        "failing_nodes",
        "window_seconds",
        "calls_per_s",
        "metric_samples_per_s",
        "methods",
        "errors_by_code",
        "manager",
        "client",
    )
    return {k: report.get(k) for k in keep}


def run_rows(label: str, report: dict[str, Any]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        (f"{label} calls/s", f"{report['calls_per_s']:.1f} (window {report['window_seconds']:.1f} s)"),
        (f"{label} metric samples/s", f"{report['metric_samples_per_s']:.1f}"),
        (f"{label} errors", " ".join(f"{c}={n}" for c, n in report["errors_by_code"].items()) or "none"),
    ]
    rows += [(f"  {name}", value) for name, value in method_rows(report)]
    rows += process_rows(f"{label} server", report.get("manager"))
    rows += process_rows(f"{label} simulator", report.get("client"))
    return rows
