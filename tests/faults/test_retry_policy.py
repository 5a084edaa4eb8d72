"""Transient metric failures are retried with backoff, inside the session: no re-registration."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc

from opsfleet.proto import manager_pb2
from tests.faults.support import ScriptedManager, prefill_spool, recent_samples
from tests.helpers import assert_eventually, scripted_manager

NO_COLLECTORS = {f"collectors__{name}__enabled": False for name in ("cpu", "memory", "disk", "network")}


class FlakyMetrics(ScriptedManager):
    """Heartbeats work; ReportMetrics answers UNAVAILABLE (no retry hint) for its first 3 s."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()
        self.report_calls = 0
        self.stored: set[int] = set()

    async def ReportMetrics(self, request: Any, context: Any) -> manager_pb2.ReportMetricsResponse:
        self.report_calls += 1
        if time.monotonic() - self.started < 3.0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
        self.stored.update(m.timestamp for m in request.metrics)
        return manager_pb2.ReportMetricsResponse(success=True, message="ok")


async def test_unavailable_metrics_are_retried_with_backoff_without_reregistering(
    apps: Any, tmp_path: Path
) -> None:
    work = tmp_path / "node"
    records = recent_samples(30)
    prefill_spool(work, records)
    servicer = FlakyMetrics()
    async with scripted_manager(servicer) as port:
        daemon = await apps.daemon(f"127.0.0.1:{port}", work_dir=work, **NO_COLLECTORS)
        await assert_eventually(lambda: len(servicer.stored) == len(records), timeout=15)
    assert servicer.registrations == 1  # heartbeats kept working: the node was never re-registered
    # Backoff from 0.2 s capped at 1 s (the test daemon's settings): a handful of tries in 3 s.
    assert 2 <= servicer.report_calls <= 25, servicer.report_calls
    assert daemon.link.heartbeats_sent >= 2
