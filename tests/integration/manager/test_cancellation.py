"""Calls cut by their deadline in the middle of a transaction leave the database usable.

Regression test: cancelling SQLAlchemy/aiosqlite mid-transaction used to leave SQLite's
write lock held, so every later write waited for the 30 s busy timeout.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.processes import Proc


async def _storm(address: str, seconds: int) -> str:
    """Saturating simulated fleet with 20 ms deadlines: many calls are cut mid-transaction."""
    sim = await Proc.start(
        [
            *("simulate", "--target", address, "--mode", "saturate", "--nodes", "200", "--workers", "1"),
            *("--duration", str(seconds), "--timeout", "0.02", "--inflight", "256"),
        ]
    )
    assert await sim.wait(timeout=60) == 0, sim.output
    return sim.output


async def test_cancelled_writes_do_not_wedge_sqlite(tmp_path: Path) -> None:
    proc = await Proc.start(
        ["manager", "--insecure", "--grpc-listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")]
    )
    try:
        address = f"127.0.0.1:{await proc.grpc_port()}"
        report = await _storm(address, 5)
        assert "DEADLINE_EXCEEDED" in report, report  # calls were cut

        async with grpc.aio.insecure_channel(address) as channel:
            manager = manager_pb2_grpc.ManagerServiceStub(channel)
            started = time.monotonic()
            await manager.RegisterNode(
                manager_pb2.RegisterNodeRequest(node_id="late", hostname="h", ip="10.0.0.1"), timeout=20
            )
            sample = manager_pb2.MetricData(type="cpu", timestamp=int(time.time()), values={"u": 1.0})
            reply = await manager.ReportMetrics(
                manager_pb2.ReportMetricsRequest(node_id="late", metrics=[sample]), timeout=20
            )
            assert reply.success
            assert time.monotonic() - started < 5.0
    finally:
        code = await proc.stop()
    assert code == 0, proc.output
