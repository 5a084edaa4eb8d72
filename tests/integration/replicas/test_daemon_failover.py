"""A real daemon given two Manager replicas (one PostgreSQL database) fails over on kill -9."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.helpers import assert_eventually
from tests.integration.replicas.fleet import Daemon, Replica, largest_gap, samples

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

FAILOVER_BOUND = 15.0


async def test_daemon_fails_over_and_loses_no_sample(database_url: str, tmp_path: Path) -> None:
    first = await Replica.start(database_url, tmp_path / "m1")
    second = await Replica.start(database_url, tmp_path / "m2")
    replicas = {r.address: r for r in (first, second)}
    daemon = await Daemon.start(tmp_path / "d", list(replicas))
    try:
        node_id = await daemon.node_id()
        on = (await assert_eventually(daemon.reporting_to, timeout=20))[-1]
        before = await assert_eventually(lambda: samples(database_url, node_id, "memory"), timeout=20)
        victim = replicas.pop(on)
        (survivor,) = replicas.values()

        victim.proc.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await victim.proc.wait()
        await assert_eventually(lambda: survivor.address in daemon.reporting_to(), timeout=FAILOVER_BOUND)
        failover = time.monotonic() - killed_at
        print(f"failover to the other replica took {failover:.2f}s")

        last_before = before[-1].timestamp

        async def caught_up() -> bool:
            stored = await samples(database_url, node_id, "memory")
            return stored[-1].timestamp >= last_before + 5

        await assert_eventually(caught_up, timeout=20)
        # Samples collected just before the stop may stay in the spool for the next start;
        # what reached the replicas has no hole and no duplicate.
        assert await daemon.stop() == 0, daemon.proc.output
        for type_ in ("memory", "cpu"):
            stored = await samples(database_url, node_id, type_)
            stamps = [s.timestamp for s in stored]
            assert len(stamps) == len(set(stamps))  # each (node, type, second) once
            # A 1 s collector: a lost batch would leave a hole of seconds around the kill.
            assert largest_gap(stored) <= 3, stamps
    finally:
        await daemon.stop()
        for replica in (first, second):
            await replica.proc.stop()
