"""Manager restarts and kill -9 while a daemon sends: fast return, no false offline, no loss."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from opsfleet.daemon.config import ManagerSection
from tests.faults.support import figures, prefill_spool, publish, recent_samples, row_counts
from tests.helpers import assert_eventually
from tests.processes import Proc

NO_COLLECTORS = {f"collectors__{name}__enabled": False for name in ("cpu", "memory", "disk", "network")}
DEFAULT_RECONNECT = {
    "manager__reconnect_interval": ManagerSection().reconnect_interval,
    "manager__reconnect_max": ManagerSection().reconnect_max,
}


async def test_manager_restart_daemon_back_fast_and_no_offline_event(apps: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    liveness = {"node__offline_after": 6.0, "node__check_interval": 0.5}
    manager = await apps.manager(db, **liveness)
    port = manager.grpc_port
    daemon = await apps.daemon(f"127.0.0.1:{port}", **DEFAULT_RECONNECT)
    await assert_eventually(lambda: daemon.link.heartbeats_sent >= 2, timeout=10)
    registrations = daemon.link.registrations

    await apps.stop(manager)
    await assert_eventually(lambda: not daemon.link.connected, timeout=10)
    await asyncio.sleep(3)  # the outage: the daemon's backoff grows meanwhile
    manager = await apps.manager(db, port=port, **liveness)
    listening = time.monotonic()
    heartbeats = daemon.link.heartbeats_sent
    await assert_eventually(lambda: daemon.link.heartbeats_sent > heartbeats, timeout=30, interval=0.1)
    back_after = time.monotonic() - listening
    publish(f"FIGURES restart: daemon back {back_after:.1f}s after the manager listened again")
    assert back_after < 30
    assert daemon.link.registrations == registrations  # the manager knew the node: no re-registration

    # Past the start-up grace (offline_after) and a few liveness checks: still online, no event.
    await asyncio.sleep(6.0 + 1.5 - (time.monotonic() - listening))
    node = await manager.store.get_node(daemon.node_id)
    assert node is not None and node.status == "online"
    kinds = [e.kind for e in await manager.store.list_events(daemon.node_id)]
    assert "offline" not in kinds, kinds


def _rows(db_file: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5)
        try:
            # One statement, one snapshot: a sample the rollup job folds meanwhile counts once.
            sql = (
                "SELECT (SELECT COALESCE(SUM(n), 0) FROM metric_points)"
                " + (SELECT COALESCE(SUM(n), 0) FROM metric_blocks)"
            )
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


async def _start_manager(db_file: Path, port: int) -> Proc:
    proc = await Proc.start(
        [
            "manager",
            "--insecure",  # this test is about outages; tests/integration/security covers mTLS
            "--grpc-listen",
            f"127.0.0.1:{port}",
            "--http-listen",
            "127.0.0.1:0",
            "--database-url",
            f"sqlite:///{db_file}",
        ]
    )
    await proc.grpc_port()
    return proc


@pytest.mark.slow
async def test_kill_9_of_the_manager_mid_stream_loses_and_duplicates_nothing(
    apps: Any, tmp_path: Path
) -> None:
    db_file = tmp_path / "m.db"
    work = tmp_path / "node"
    records = recent_samples(2000)
    prefill_spool(work, records)
    first = await _start_manager(db_file, 0)
    port = await first.grpc_port()
    try:
        daemon = await apps.daemon(f"127.0.0.1:{port}", work_dir=work, spool__batch_size=50, **NO_COLLECTORS)
        await assert_eventually(lambda: _rows(db_file) >= 400, timeout=30, interval=0.05)
    finally:
        await first.stop(signal.SIGKILL)
    pending_at_kill = await daemon.outbox.pending()
    stored_at_kill = _rows(db_file)
    acked_at_kill = daemon.link.delivery.samples_stored
    assert pending_at_kill > 0, "the kill came after delivery had finished"
    assert acked_at_kill <= stored_at_kill  # every acknowledged sample was durable

    second = await _start_manager(db_file, port)
    try:

        async def drained() -> bool:
            return await daemon.outbox.pending() == 0

        await assert_eventually(drained, timeout=30, interval=0.2)
        await apps.stop(daemon)
    finally:
        await second.stop()
    counts = row_counts(db_file, daemon.node_id)
    expected = {(r["type"], r["timestamp"]) for r in records}
    result = figures(daemon, counts, expected)
    publish(
        f"{result.line('kill-9')} acked_at_kill={acked_at_kill}"
        f" stored_at_kill={stored_at_kill} pending_at_kill={pending_at_kill}"
    )
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values())
    assert result.duplicated == 0 and result.lost == 0
