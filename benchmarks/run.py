"""Run a Manager benchmark scenario and print (and optionally save) its results.

    python benchmarks/run.py saturate        # target 1: throughput vs a bare gRPC server
    python benchmarks/run.py fleet           # target 2: N nodes for T seconds
    python benchmarks/run.py restart         # target 3: Manager restart under load
    python benchmarks/run.py ingest-history  # target 4: ingestion rate, history queries
    python benchmarks/run.py config-rollout  # central config: a revision reaching every node
    python benchmarks/run.py daemon-footprint  # one daemon's RSS and CPU at default settings

Each scenario starts its own servers as subprocesses, on SQLite by default or on
PostgreSQL with --database-url. Logs and simulator reports go to the work directory
(default benchmarks/results/runs/<scenario>-<time>/). --json [FILE] saves the results
(default benchmarks/results/<scenario>-<time>.json). --check makes a missed target exit 1.
See docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dbs import ScratchDatabase
from benchmarks.output import RESULTS_DIR, default_json_path, save
from benchmarks.procs import BenchError
from benchmarks.scenarios import config_rollout, daemon_footprint, fleet, ingest_history, restart, saturate
from opsfleet.common.errors import OpsfleetError

AUTO = "auto"
ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("grpcio", "protobuf", "cryptography", "SQLAlchemy", "aiosqlite", "asyncpg", "fastapi", "uvicorn")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="scenario", metavar="SCENARIO", required=True)
    for module in (saturate, fleet, restart, ingest_history, config_rollout, daemon_footprint):
        module.add_parser(sub)
    for p in sub.choices.values():
        p.add_argument(
            "--workdir", type=Path, help="logs, databases and simulator reports (default: a new dir)"
        )
        p.add_argument("--json", nargs="?", const=AUTO, metavar="FILE", help="save results as JSON")
        p.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
        p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workdir: Path = args.workdir or RESULTS_DIR / "runs" / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = _loadavg()
    try:
        results = args.run(args, workdir)
    except (BenchError, OpsfleetError) as exc:
        print(f"benchmark {args.scenario} failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    results["machine"] = _machine(load_before, workdir, getattr(args, "database_url", None))
    if args.json:
        path = default_json_path(args.scenario) if args.json == AUTO else Path(args.json)
        print(f"\nresults written to {save(results, path)}")
    print(f"logs and simulator reports in {workdir}")
    if args.check and results.get("passed") is False:
        return 1
    return 0


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _machine(load_before: list[float], workdir: Path, database_url: str | None) -> dict[str, object]:
    """Where and with what the run was made: commit, library and database versions, load average."""
    versions: dict[str, str] = {}
    for dist in LIBRARIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    versions["sqlite"] = sqlite3.sqlite_version
    if database_url:
        versions["postgresql_server"] = (
            ScratchDatabase(workdir, database_url).server_version() or "unreachable"
        )
    return {
        "cpus": os.cpu_count() or 0,
        "python": sys.version.split()[0],
        "commit": _git("rev-parse", "HEAD"),
        "commit_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "libraries": versions,
        "loadavg_before": load_before,
        "loadavg_after": _loadavg(),
    }


def _git(*argv: str) -> str:
    try:
        done = subprocess.run(
            ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
