"""Supervisor timers on a FakeClock: minutes of backoff and health-check time skipped at once."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from opsfleet.daemon.supervisor import AgentSpec, AgentStatus, Supervisor
from opsfleet.daemon.supervisor.fakes import FakeClock, FakeSpawner

S = AgentStatus
Start = Callable[..., Awaitable[tuple[Supervisor, FakeSpawner]]]
MakeSpec = Callable[..., AgentSpec]
Eventually = Callable[..., Awaitable[Any]]

# Real-world delays: a test that waited for them would run for many minutes.
SLOW = {
    "start_seconds": 5,
    "stop_timeout": 30,
    "restart": {"backoff_base": 60, "backoff_max": 300, "max_retries": 3, "retry_window": 3600},
}


async def test_restart_backoff_is_skipped_on_the_fake_clock(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    clock = FakeClock()
    began_real, began_fake = time.monotonic(), clock.monotonic()
    sup, spawner = await fake_supervisor(make_spec("a", **SLOW), clock=clock)
    assert sup.agent("a").state is S.STARTING
    await clock.skip(4.9)
    assert sup.agent("a").state is S.STARTING  # start_seconds is 5 on this clock
    await clock.skip(0.2)
    await eventually(lambda: sup.agent("a").state is S.RUNNING)

    delays = []
    for attempt in (1, 2, 3):
        spawner.last.exit(1)
        await eventually(lambda: sup.agent("a").state is S.BACKOFF)
        deadline = clock.next_deadline
        assert deadline is not None
        delay = deadline - clock.monotonic()
        assert 60 - 1e-6 <= delay <= 300 + 1e-6, delay
        delays.append(delay)
        await clock.skip(delay - 1)
        assert (sup.agent("a").state, len(spawner.children)) == (S.BACKOFF, attempt)
        await clock.skip(1)
        await eventually(lambda n=attempt: len(spawner.children) == n + 1)
        await clock.skip(5)
        await eventually(lambda: sup.agent("a").state is S.RUNNING)

    spawner.last.exit(1)  # a fourth crash within retry_window: the budget is spent
    await eventually(lambda: sup.agent("a").state is S.FAILED)
    view = sup.agent("a")
    assert view.restart_count == 3
    assert "gave up after 3 restarts within 3600s" in view.last_exit_reason
    assert clock.monotonic() - began_fake >= sum(delays) >= 180 - 1e-6  # float sums of fake-clock gaps
    assert time.monotonic() - began_real < 5


async def test_restart_budget_recovers_after_stable_after_on_the_fake_clock(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    spec = make_spec("a", **{**SLOW, "restart": {**SLOW["restart"], "max_retries": 1, "stable_after": 600}})
    clock = FakeClock()
    sup, spawner = await fake_supervisor(spec, clock=clock)
    for children in (1, 2, 3):
        await clock.skip(5)
        await eventually(lambda: sup.agent("a").state is S.RUNNING)
        await clock.skip(600)  # stable: the one allowed restart is available again
        spawner.last.exit(1)
        await eventually(lambda: sup.agent("a").state is S.BACKOFF)
        await clock.skip(300)
        await eventually(lambda n=children: len(spawner.children) == n + 1)
    assert sup.agent("a").restart_count == 3


async def test_heartbeat_timeout_and_check_interval_run_on_the_fake_clock(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    spec = make_spec("a", **SLOW, health_check={"interval": 10, "heartbeat_timeout": 120})
    clock = FakeClock()
    sup, spawner = await fake_supervisor(spec, clock=clock)
    await clock.skip(5)
    await eventually(lambda: sup.agent("a").state is S.RUNNING)
    await clock.skip(115)
    assert sup.agent("a").state is S.RUNNING  # checked every 10 s: silent for 110 s of the 120 s allowed
    await clock.skip(20)  # checks at 120 s (not over the limit yet) and 130 s
    await eventually(lambda: sup.agent("a").state is S.BACKOFF)
    assert spawner.children[0].signals == [15]  # SIGTERM: stopped as unhealthy
    assert sup.agent("a").last_exit_reason.startswith("heartbeat timeout: none for 130.0s (limit 120s)")
