"""Printing results tables and saving results JSON (benchmarks/results/ is git-ignored)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_MIB = 1024 * 1024


def default_json_path(scenario: str) -> Path:
    return RESULTS_DIR / f"{scenario}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def save(results: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def mib(n: float) -> str:
    return f"{n / _MIB:.1f} MiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(title: str, rows: Sequence[tuple[str, object]]) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    print(f"\n== {title}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def method_rows(report: Mapping[str, Any]) -> list[tuple[str, object]]:
    """One row per RPC method of a simulator JSON report."""
    rows: list[tuple[str, object]] = []
    for m in report["methods"]:
        codes = " ".join(f"{c}={n}" for c, n in m["codes"].items())
        rows.append(
            (
                m["method"],
                f"{m['calls_per_s']:9.1f}/s  p50 {m['p50_ms']:8.2f} ms  p99 {m['p99_ms']:8.2f} ms  "
                f"max {m['max_ms']:8.2f} ms  calls {m['calls']}  errors {m['errors']} {codes}".rstrip(),
            )
        )
    return rows


def process_rows(label: str, summary: Mapping[str, Any] | None) -> list[tuple[str, object]]:
    if not summary:
        return [(f"{label} cpu/rss", "not sampled")]
    return [
        (
            f"{label} cpu",
            f"mean {summary['cpu_mean']:.0f}%  max {summary['cpu_max']:.0f}%  (100% = one core)",
        ),
        (f"{label} rss", f"max {mib(summary['rss_max'])}  last {mib(summary['rss_last'])}"),
    ]
