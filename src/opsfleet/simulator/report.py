"""The final report of a run: built from merged worker statistics, printed as a table, saved as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsfleet.common.errors import OpsfleetError
from opsfleet.simulator.calls import Method
from opsfleet.simulator.config import SimConfig
from opsfleet.simulator.procstats import ProcSample, ProcSummary, summarize
from opsfleet.simulator.stats import CURVES, Aggregate, curve_list

METRIC_TYPES_PER_REPORT = 4
_MIB = 1024 * 1024


@dataclass(frozen=True)
class MethodSummary:
    method: str
    calls: int
    ok: int
    errors: int
    calls_per_s: float
    """Calls (successful or not) per second within the measurement window."""
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    """Latencies are of successful calls only; failures are counted in ``codes``."""
    codes: dict[str, int]


@dataclass(frozen=True)
class Report:
    mode: str
    target: str
    nodes: int
    registered_nodes: int
    failing_nodes: int
    """Nodes whose last call had failed when the run ended."""
    workers: int
    duration: float
    elapsed: float
    started_at: float
    """Wall-clock time of second 0 of every curve (unix seconds)."""
    window_seconds: float
    calls_per_s: float
    metric_samples_per_s: float
    methods: list[MethodSummary]
    errors_by_code: dict[str, int]
    curves: dict[str, list[int]]
    """Per-second counts from ``started_at``: calls, errors, registrations, recoveries."""
    manager: ProcSummary | None
    client: ProcSummary | None
    manager_samples: list[ProcSample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def method(self, name: str) -> MethodSummary | None:
        return next((m for m in self.methods if m.method == name), None)


def build_report(
    config: SimConfig,
    agg: Aggregate,
    *,
    started_at: float,
    elapsed: float,
    manager_samples: Sequence[ProcSample] = (),
    client_samples: Sequence[ProcSample] = (),
    failures: Sequence[str] = (),
) -> Report:
    order = [m.value for m in Method]
    names = sorted(agg.methods, key=lambda m: (order.index(m) if m in order else len(order), m))
    methods = [
        MethodSummary(
            method=name,
            calls=stats.calls,
            ok=stats.ok,
            errors=stats.errors,
            calls_per_s=round(agg.rates.get(name, 0.0), 2),
            p50_ms=round(stats.latency.percentile(50) * 1000, 3),
            p99_ms=round(stats.latency.percentile(99) * 1000, 3),
            max_ms=round(stats.latency.max * 1000, 3),
            mean_ms=round(stats.latency.mean * 1000, 3),
            codes=dict(sorted(stats.codes.items())),
        )
        for name, stats in ((n, agg.methods[n]) for n in names)
    ]
    length = max(1, math.ceil(elapsed))
    curves = {name: curve_list(agg.curves.get(name, {}), length) for name in CURVES}
    return Report(
        mode=config.mode.value,
        target=config.target,
        nodes=config.nodes,
        registered_nodes=agg.registered_nodes,
        failing_nodes=agg.failing_nodes,
        workers=agg.workers,
        duration=config.duration,
        elapsed=round(elapsed, 3),
        started_at=started_at,
        window_seconds=round(agg.window_seconds, 3),
        calls_per_s=round(agg.total_rate, 2),
        metric_samples_per_s=round(agg.rates.get(Method.METRICS.value, 0.0) * METRIC_TYPES_PER_REPORT, 2),
        methods=methods,
        errors_by_code=agg.codes(),
        curves=curves,
        manager=summarize(manager_samples) if manager_samples else None,
        client=summarize(client_samples) if client_samples else None,
        manager_samples=list(manager_samples),
        failures=list(failures),
        config=dataclasses.asdict(config),
    )


def to_json(report: Report) -> str:
    return json.dumps(dataclasses.asdict(report), indent=2, sort_keys=False)


def write_json(report: Report, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_json(report) + "\n")
    except OSError as exc:
        raise OpsfleetError(f"cannot write report {path}: {exc.strerror or exc}") from exc


def compact_curve(points: Sequence[int], max_bins: int = 30, offset: int = 0) -> str:
    """Non-empty bins of a per-second curve, e.g. ``0-4s:250 5-9s:250``; ``-`` when all zero.

    ``points[0]`` is second ``offset`` of the run.
    """
    if not any(points):
        return "-"
    width = max(1, math.ceil(len(points) / max_bins))
    parts = []
    for start in range(0, len(points), width):
        total = sum(points[start : start + width])
        if total:
            end = min(start + width, len(points)) - 1 + offset
            first = start + offset
            label = f"{first}s" if first == end else f"{first}-{end}s"
            parts.append(f"{label}:{total}")
    return " ".join(parts)


def render(report: Report) -> str:
    lines = [
        f"opsfleet simulate: mode={report.mode} target={report.target} nodes={report.nodes} "
        f"({report.registered_nodes} registered, {report.failing_nodes} failing at the end) "
        f"workers={report.workers} "
        f"elapsed={report.elapsed:.1f}s window={report.window_seconds:.1f}s",
        f"{'method':<16}{'calls':>10}{'ok':>10}{'errors':>8}{'calls/s':>11}"
        f"{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for m in report.methods:
        lines.append(
            f"{m.method:<16}{m.calls:>10}{m.ok:>10}{m.errors:>8}{m.calls_per_s:>11.1f}"
            f"{m.p50_ms:>10.2f}{m.p99_ms:>10.2f}{m.max_ms:>10.2f}"
        )
    total_calls = sum(m.calls for m in report.methods)
    total_errors = sum(m.errors for m in report.methods)
    total_ok = total_calls - total_errors
    lines.append(f"{'total':<16}{total_calls:>10}{total_ok:>10}{total_errors:>8}{report.calls_per_s:>11.1f}")
    codes = " ".join(f"{c}={n}" for c, n in report.errors_by_code.items()) or "none"
    lines.append(f"errors by code: {codes}")
    lines.append(f"metric samples/s: {report.metric_samples_per_s:.1f}")
    lines.append(f"registrations per second: {compact_curve(report.curves['registrations'])}")
    lines.append(f"recoveries (first success after failures): {compact_curve(report.curves['recoveries'])}")
    if report.manager is not None:
        lines.append(
            f"manager process: cpu mean {report.manager.cpu_mean:.0f}% max {report.manager.cpu_max:.0f}%, "
            f"rss max {report.manager.rss_max / _MIB:.1f} MiB last {report.manager.rss_last / _MIB:.1f} MiB "
            f"({report.manager.samples} samples)"
        )
    if report.client is not None:
        lines.append(
            f"simulator workers: cpu mean {report.client.cpu_mean:.0f}% max {report.client.cpu_max:.0f}% "
            f"(100% = one core)"
        )
    for failure in report.failures:
        lines.append(f"WORKER FAILED: {failure.strip().splitlines()[-1] if failure.strip() else failure}")
    return "\n".join(lines)
