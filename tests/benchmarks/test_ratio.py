"""A short saturate benchmark in every test run: fails only on a large throughput regression.

Runs ``benchmarks/run.py saturate`` exactly as a person would (baseline server, then the
Manager on a fresh SQLite file, the same short simulator run against each) and checks the
ratio of their calls/s. Absolute numbers depend on the machine and on whatever else runs
on it, so no absolute time or rate is asserted; the ratio bound is far below the measured
value (about 0.4 on the 2-core reference machine, see docs/performance.md) so that only a
real regression (say a synchronous database write on the heartbeat path) trips it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
MIN_RATIO = 0.15


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_manager_keeps_a_fair_share_of_bare_grpc_throughput(tmp_path: Path) -> None:
    results = tmp_path / "saturate.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "saturate",
            "--nodes=200",
            "--duration=5",
            "--workers=2",
            "--inflight=64",
            "--progress-interval=60",
            f"--workdir={tmp_path / 'run'}",
            f"--json={results}",
        ],
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert proc.returncode == 0, f"benchmark failed:\n{proc.stdout}\n{proc.stderr}"
    data = json.loads(results.read_text())
    baseline, manager = data["baseline"], data["manager"]
    assert baseline["calls_per_s"] > 0, proc.stdout
    assert manager["errors_by_code"] == {}, proc.stdout
    assert manager["registered_nodes"] == 200
    assert data["ratio"] >= MIN_RATIO, proc.stdout
