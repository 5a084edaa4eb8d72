"""The final report: built from merged statistics, rendered, saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from opsfleet.simulator.config import Mode, SimConfig
from opsfleet.simulator.procstats import ProcSample, summarize
from opsfleet.simulator.report import build_report, compact_curve, render, write_json
from opsfleet.simulator.stats import CURVE_REGISTRATIONS, MethodStats, WorkerReport, merge_reports


def _report_input() -> WorkerReport:
    methods: dict[str, MethodStats] = {}
    for name, n in (("SyncAgentStates", 2), ("Heartbeat", 60), ("ReportMetrics", 10), ("RegisterNode", 10)):
        stats = methods[name] = MethodStats()
        for i in range(n):
            stats.record("OK", 0.001 * (i + 1))
    methods["Heartbeat"].record("UNAVAILABLE", 0.0)
    return WorkerReport(
        worker_id=0,
        nodes=10,
        registered_nodes=10,
        failing_nodes=0,
        window_seconds=10.0,
        window_calls={"Heartbeat": 61, "ReportMetrics": 10, "SyncAgentStates": 2, "RegisterNode": 10},
        methods=methods,
        curves={CURVE_REGISTRATIONS: {0: 6, 2: 4}},
    )


def test_build_render_and_save(tmp_path: Path) -> None:
    cfg = SimConfig(nodes=10, duration=10.0, mode=Mode.FLEET)
    samples = [ProcSample(1.0, 50.0, 100 * 1024 * 1024), ProcSample(2.0, 150.0, 120 * 1024 * 1024)]
    report = build_report(
        cfg, merge_reports([_report_input()]), started_at=1000.0, elapsed=10.0, manager_samples=samples
    )
    assert [m.method for m in report.methods] == [
        "RegisterNode",
        "Heartbeat",
        "ReportMetrics",
        "SyncAgentStates",
    ]
    hb = report.method("Heartbeat")
    assert hb is not None and hb.calls_per_s == 6.1 and hb.codes == {"UNAVAILABLE": 1}
    assert hb.p50_ms == round(hb.p50_ms, 3) and 29.0 <= hb.p50_ms <= 31.0
    assert report.calls_per_s == 8.3
    assert report.metric_samples_per_s == 4.0  # one report/s, four metric types each
    assert report.errors_by_code == {"UNAVAILABLE": 1}
    assert report.curves["registrations"] == [6, 0, 4, 0, 0, 0, 0, 0, 0, 0]
    assert report.manager is not None and report.manager.cpu_max == 150.0

    text = render(report)
    assert "Heartbeat" in text and "UNAVAILABLE=1" in text and "rss max 120.0 MiB" in text

    path = tmp_path / "out" / "report.json"
    write_json(report, path)
    data = json.loads(path.read_text())
    assert data["calls_per_s"] == 8.3
    assert data["config"]["mode"] == "fleet"
    assert data["methods"][1]["method"] == "Heartbeat"
    assert len(data["manager_samples"]) == 2


def test_compact_curve() -> None:
    assert compact_curve([0, 0, 0]) == "-"
    assert compact_curve([5, 0, 3]) == "0s:5 2s:3"
    assert compact_curve([1] * 60, max_bins=6) == " ".join(f"{s}-{s + 9}s:10" for s in range(0, 60, 10))


def test_summarize_process_samples() -> None:
    assert summarize([]).samples == 0
    s = summarize([ProcSample(0, 10.0, 5), ProcSample(1, 30.0, 9), ProcSample(2, 20.0, 7)])
    assert (s.cpu_mean, s.cpu_max, s.rss_max, s.rss_last) == (20.0, 30.0, 9, 7)


def test_compact_curve_with_offset() -> None:
    assert compact_curve([0, 4, 0, 2], offset=10) == "11s:4 13s:2"
    assert compact_curve([1, 1, 1, 1], max_bins=2, offset=20) == "20-21s:2 22-23s:2"
