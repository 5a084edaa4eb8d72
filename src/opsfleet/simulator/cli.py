"""``opsfleet simulate``: parse flags into a SimConfig, run the simulation, print and save the report."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from opsfleet.common.durations import parse_duration
from opsfleet.common.logs import configure_logging
from opsfleet.simulator import config as c

HELP = """\
Simulate a fleet of daemons against a Manager, using the real protocol
(manager.ManagerService RegisterNode / Heartbeat / ReportMetrics and
proto.DaemonService/SyncAgentStates).

Every simulated node registers once (spread over --stagger seconds), then sends a
heartbeat every --heartbeat-interval, a metrics report (cpu, memory, disk, network with
every key of the wire contract) every --metrics-interval and its agents' states every
--sync-interval, each with +-jitter. Like a real daemon it registers again when the
Manager answers NOT_FOUND, and on UNAVAILABLE it backs off with full jitter and then
registers again (this is what a Manager restart looks like).

--mode saturate measures maximum throughput instead: after registering, the nodes send
back-to-back calls in fleet proportions (1/heartbeat : 1/metrics : 1/sync interval, so
6 : 1 : 0.2 with the defaults), never more than --inflight at a time.

The nodes are spread over --workers processes, each with its own asyncio loop and
--channels HTTP/2 connections. A progress line goes to stderr every --progress-interval
seconds; at the end a table goes to stdout: calls/s per method, latency p50/p99/max of
successful calls, errors by status code, registrations per second and, with
--manager-pid, the Manager's CPU and RSS. Against a Manager with the fleet CA, --enroll
HOST:PORT --token T --ca-fingerprint F enrolls every node first (one identity and one mTLS
connection per node); otherwise start the Manager with --insecure. --json FILE saves the
full report, including the per-second curves. Durations accept 500ms, 10s, 5m, 1h or plain seconds.
"""


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="simulate many daemons against a Manager (load generator)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--target",
        default=c.DEFAULT_TARGET,
        metavar="HOST:PORT[,HOST:PORT...]",
        help="Manager gRPC address, or several replicas to spread the fleet over (%(default)s)",
    )
    p.add_argument(
        "--nodes", type=int, default=c.DEFAULT_NODES, help="number of simulated nodes (%(default)s)"
    )
    p.add_argument(
        "--heartbeat-interval",
        type=_duration,
        default=c.DEFAULT_HEARTBEAT_INTERVAL,
        metavar="DURATION",
        help="seconds between a node's heartbeats (%(default)s)",
    )
    p.add_argument(
        "--metrics-interval",
        type=_duration,
        default=c.DEFAULT_METRICS_INTERVAL,
        metavar="DURATION",
        help="seconds between a node's metrics reports; 0 = none (%(default)s)",
    )
    p.add_argument(
        "--sync-interval",
        type=_duration,
        default=c.DEFAULT_SYNC_INTERVAL,
        metavar="DURATION",
        help="seconds between a node's SyncAgentStates calls; 0 = none (%(default)s)",
    )
    p.add_argument(
        "--duration",
        type=_duration,
        default=c.DEFAULT_DURATION,
        metavar="DURATION",
        help="how long the run lasts, registration included (%(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="worker processes, each with its own event loop (default: CPUs, at most 4: %(default)s)",
    )
    p.add_argument(
        "--channels", type=int, default=c.DEFAULT_CHANNELS, help="gRPC connections per worker (%(default)s)"
    )
    p.add_argument(
        "--stagger",
        type=_duration,
        default=c.DEFAULT_STAGGER,
        metavar="DURATION",
        help="fleet mode: first registrations are spread uniformly over this many seconds (%(default)s)",
    )
    p.add_argument(
        "--mode",
        choices=[m.value for m in c.Mode],
        default=c.Mode.FLEET.value,
        help="fleet: each node on its own schedule; saturate: back-to-back calls (%(default)s)",
    )
    p.add_argument(
        "--inflight",
        type=int,
        default=c.DEFAULT_INFLIGHT,
        help="saturate mode: most calls in flight at once, over all workers (%(default)s)",
    )
    p.add_argument(
        "--jitter",
        type=float,
        default=c.DEFAULT_JITTER,
        help="each interval is scaled by a random factor in [1-J, 1+J) (%(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=_duration,
        default=c.DEFAULT_TIMEOUT,
        metavar="DURATION",
        help="deadline per call (%(default)s)",
    )
    p.add_argument(
        "--backoff-base",
        type=_duration,
        default=c.DEFAULT_BACKOFF_BASE,
        metavar="DURATION",
        help="first full-jitter backoff ceiling after an error (%(default)s)",
    )
    p.add_argument(
        "--backoff-cap",
        type=_duration,
        default=c.DEFAULT_BACKOFF_CAP,
        metavar="DURATION",
        help="largest backoff ceiling (%(default)s)",
    )
    p.add_argument(
        "--agents-per-node",
        type=int,
        default=c.DEFAULT_AGENTS_PER_NODE,
        help="agents reported by each SyncAgentStates call (%(default)s)",
    )
    p.add_argument(
        "--node-prefix",
        default=c.DEFAULT_NODE_PREFIX,
        help="node ids are PREFIX plus a six-digit number (%(default)s)",
    )
    p.add_argument(
        "--progress-interval",
        type=_duration,
        default=c.DEFAULT_PROGRESS_INTERVAL,
        metavar="DURATION",
        help="seconds between progress lines on stderr (%(default)s)",
    )
    p.add_argument(
        "--manager-pid", type=int, metavar="PID", help="sample this process's CPU%% and RSS every second"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report as JSON to FILE")
    p.add_argument("--tls-ca", default="", metavar="FILE", help="connect with TLS, trusting this CA")
    p.add_argument(
        "--tls-cert", default="", metavar="FILE", help="client certificate for mTLS (with --tls-key)"
    )
    p.add_argument(
        "--tls-key", default="", metavar="FILE", help="client private key for mTLS (with --tls-cert)"
    )
    p.add_argument(
        "--enroll",
        default="",
        metavar="HOST:PORT",
        help="enroll every node at this enrollment port and use mTLS with its own certificate",
    )
    p.add_argument("--token", default="", help="enrollment token with at least --nodes uses (with --enroll)")
    p.add_argument("--ca-fingerprint", default="", metavar="sha256:HEX", help="the fleet CA (with --enroll)")
    p.add_argument(
        "--enroll-concurrency",
        type=int,
        default=c.DEFAULT_ENROLL_CONCURRENCY,
        metavar="N",
        help="enrollments in flight per worker; the other nodes wait their turn (%(default)s)",
    )
    p.add_argument("--seed", type=int, help="random seed, for repeatable node profiles and schedules")
    p.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info", help="log verbosity"
    )
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> c.SimConfig:
    tls = None
    if args.tls_ca or args.tls_cert or args.tls_key:
        tls = c.TlsFiles(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)
    return c.SimConfig(
        target=args.target,
        nodes=args.nodes,
        heartbeat_interval=args.heartbeat_interval,
        metrics_interval=args.metrics_interval,
        sync_interval=args.sync_interval,
        duration=args.duration,
        workers=args.workers,
        channels=args.channels,
        stagger=args.stagger,
        mode=c.Mode(args.mode),
        inflight=args.inflight,
        jitter=args.jitter,
        timeout=args.timeout,
        backoff_base=args.backoff_base,
        backoff_cap=args.backoff_cap,
        agents_per_node=args.agents_per_node,
        node_prefix=args.node_prefix,
        progress_interval=args.progress_interval,
        manager_pid=args.manager_pid,
        tls=tls,
        enroll=(
            c.EnrollSettings(args.enroll, args.token, args.ca_fingerprint, args.enroll_concurrency)
            if args.enroll
            else None
        ),
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from opsfleet.simulator.report import render, write_json
    from opsfleet.simulator.runner import Simulation

    configure_logging(args.log_level)
    config = config_from_args(args)
    simulation = Simulation(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: simulation.request_stop())
    report = simulation.run()
    print(render(report), flush=True)
    if args.json is not None:
        write_json(report, args.json)
        print(f"report written to {args.json}", file=sys.stderr)
    return 1 if report.failures else 0
