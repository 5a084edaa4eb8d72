"""A leader that hangs (SIGSTOP) keeps its socket open: PostgreSQL ends its idle session,
another replica is elected, and the old leader steps down when it runs again."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from opsfleet.manager.store.leader_pg import SESSION_IDLE_TIMEOUT
from tests.helpers import assert_eventually
from tests.integration.replicas.fleet import Replica

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]


async def _is_leader(replica: Replica) -> bool:
    return bool((await replica.ready()).get("leader"))


async def test_hung_leader_is_replaced_and_steps_down(database_url: str, tmp_path: Path) -> None:
    first = await Replica.start(database_url, tmp_path / "m1")
    second = await Replica.start(database_url, tmp_path / "m2")
    try:
        await assert_eventually(lambda: _is_leader(first), timeout=10)
        first.proc.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        await assert_eventually(lambda: _is_leader(second), timeout=SESSION_IDLE_TIMEOUT + 10)
        print(f"\nhung leader replaced after {time.monotonic() - stopped:.1f}s")
        first.proc.proc.send_signal(signal.SIGCONT)
        await first.proc.wait_for_line("is no longer the leader", timeout=10)
        assert not await _is_leader(first)
        assert await _is_leader(second)
    finally:
        first.proc.proc.send_signal(signal.SIGCONT)
        for replica in (first, second):
            await replica.proc.stop()
