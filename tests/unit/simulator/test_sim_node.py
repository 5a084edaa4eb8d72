"""How a simulated node reacts to the Manager's answers, against the in-memory FakeManager."""

from __future__ import annotations

import asyncio
import random

import pytest

from opsfleet.simulator.calls import Method
from opsfleet.simulator.config import SimConfig
from opsfleet.simulator.fake import FakeManager
from opsfleet.simulator.node import Drained, InFlight, SimNode, jittered, pick
from opsfleet.simulator.payloads import identity_for
from opsfleet.simulator.stats import CURVE_RECOVERIES, CURVE_REGISTRATIONS, Recorder


class RecordingSleep:
    """Returns at once and remembers the delays; sets ``draining`` after ``limit`` sleeps."""

    def __init__(self, draining: asyncio.Event | None = None, limit: int = 1_000_000) -> None:
        self.delays: list[float] = []
        self._draining = draining
        self._limit = limit

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._draining is not None and len(self.delays) >= self._limit:
            self._draining.set()
        await asyncio.sleep(0)


def make_node(
    manager: FakeManager,
    *,
    config: SimConfig | None = None,
    sleep: RecordingSleep | None = None,
    draining: asyncio.Event | None = None,
    inflight: InFlight | None = None,
) -> tuple[SimNode, Recorder]:
    rand = random.Random(5)
    recorder = Recorder(t0=0.0)
    node = SimNode(
        identity_for("sim-000001", 1, rand),
        caller=manager,
        recorder=recorder,
        config=config or SimConfig(backoff_base=1.0, backoff_cap=8.0),
        rand=rand,
        sleep=sleep or RecordingSleep(),
        draining=draining,
        inflight=inflight,
    )
    return node, recorder


async def test_not_found_registers_again_and_carries_on() -> None:
    manager = FakeManager()
    node, recorder = make_node(manager)
    await node.register()
    manager.forget(node.identity.node_id)
    await node.heartbeat()
    assert [m for m, _ in manager.calls] == [Method.REGISTER, Method.HEARTBEAT, Method.REGISTER]
    await node.report_metrics()
    await node.sync_agents()
    assert manager.count(Method.METRICS) == 1
    assert manager.count(Method.SYNC) == 1
    assert node.registrations == 2
    assert recorder.methods["Heartbeat"].codes == {"NOT_FOUND": 1}
    assert sum(recorder.curves[CURVE_REGISTRATIONS].values()) == 2
    assert not node.failing


async def test_unavailable_backs_off_then_starts_a_new_session_without_registering() -> None:
    """As the daemon's link: the Manager keeps the node across its restart, so the node sends
    a heartbeat (retried with full-jitter backoff) and its agent states, and no RegisterNode."""
    manager = FakeManager()
    sleep = RecordingSleep()
    node, recorder = make_node(manager, sleep=sleep)
    await node.register()
    manager.available = False
    attempts = 0
    original = manager.heartbeat

    async def heartbeat_recovering(ident: object, timestamp: int) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 4:
            manager.available = True
        return await original(ident, timestamp)  # type: ignore[arg-type]

    manager.heartbeat = heartbeat_recovering  # type: ignore[method-assign]
    await node.heartbeat()
    # one backoff before each new attempt after the failed scheduled heartbeat
    ceilings = [1.0, 2.0, 4.0]
    assert len(sleep.delays) == 3
    assert all(0.0 <= d <= c for d, c in zip(sleep.delays, ceilings, strict=True))
    assert [m for m, _ in manager.calls] == [Method.REGISTER, *[Method.HEARTBEAT] * 4, Method.SYNC]
    assert node.registrations == 1
    assert not node.failing
    assert recorder.methods["Heartbeat"].codes == {"UNAVAILABLE": 3}
    assert sum(recorder.curves[CURVE_RECOVERIES].values()) == 1


async def test_new_session_registers_when_the_manager_forgot_the_node() -> None:
    manager = FakeManager()

    class ComesBackWiped(RecordingSleep):
        async def __call__(self, seconds: float) -> None:
            manager.available = True  # the Manager is back, on a new database
            manager.forget(node.identity.node_id)
            await super().__call__(seconds)

    node, _ = make_node(manager, sleep=ComesBackWiped())
    await node.register()
    manager.available = False
    await node.heartbeat()
    assert [m for m, _ in manager.calls] == [
        Method.REGISTER,
        Method.HEARTBEAT,  # UNAVAILABLE
        Method.HEARTBEAT,  # NOT_FOUND
        Method.REGISTER,
        Method.SYNC,
    ]
    assert node.registrations == 2
    assert not node.failing


async def test_backoff_is_capped_and_reset_after_success() -> None:
    manager = FakeManager()
    sleep = RecordingSleep()
    node, _ = make_node(manager, sleep=sleep, config=SimConfig(backoff_base=1.0, backoff_cap=2.0))
    manager.available = False
    attempts = 0
    original = manager.register

    async def register_after_ten(ident: object) -> str:
        nonlocal attempts
        attempts += 1
        manager.available = attempts >= 10
        return await original(ident)  # type: ignore[arg-type]

    manager.register = register_after_ten  # type: ignore[method-assign]
    await node.register()
    assert len(sleep.delays) == 9
    assert max(sleep.delays) <= 2.0
    sleep.delays.clear()
    manager.available = False
    manager.register = original  # type: ignore[method-assign]

    async def back_after_one_attempt(ident: object, timestamp: int) -> str:
        code = await FakeManager.heartbeat(manager, ident, timestamp)  # type: ignore[arg-type]
        manager.available = True
        return code

    manager.heartbeat = back_after_one_attempt  # type: ignore[method-assign]
    await node.heartbeat()
    assert sleep.delays[0] <= 1.0  # reset: the first ceiling is the base again


async def test_other_errors_only_back_off_for_overload() -> None:
    class Exhausted(FakeManager):
        async def heartbeat(self, node: object, timestamp: int) -> str:
            return "RESOURCE_EXHAUSTED"

        async def sync_agents(self, node: object, states: object) -> str:
            return "INVALID_ARGUMENT"

    manager = Exhausted()
    sleep = RecordingSleep()
    node, recorder = make_node(manager, sleep=sleep)
    await node.register()
    await node.heartbeat()
    assert len(sleep.delays) == 1
    await node.sync_agents()
    assert len(sleep.delays) == 1
    assert manager.count(Method.REGISTER) == 1
    assert recorder.errors == 2


async def test_metric_timestamps_are_distinct_when_back_to_back() -> None:
    manager = FakeManager()
    node, _ = make_node(manager)
    await node.register()
    for _ in range(5):
        await node.report_metrics()
    stamps = [ts for _, ts, _ in manager.metrics]
    assert len(set(stamps)) == 5
    assert stamps == sorted(stamps)
    assert all(set(m) == {"cpu", "memory", "disk", "network"} for _, _, m in manager.metrics)


async def test_draining_node_starts_no_new_call() -> None:
    manager = FakeManager()
    draining = asyncio.Event()
    inflight = InFlight()
    node, _ = make_node(manager, draining=draining, inflight=inflight)
    await node.register()
    draining.set()
    with pytest.raises(Drained):
        await node.heartbeat()
    assert manager.count(Method.HEARTBEAT) == 0
    assert inflight.count == 0
    await asyncio.wait_for(inflight.wait_idle(), 1.0)


async def test_fleet_schedule_follows_the_intervals_and_ends_when_draining() -> None:
    manager = FakeManager()
    draining = asyncio.Event()
    sleep = RecordingSleep(draining, limit=400)
    config = SimConfig(
        heartbeat_interval=10.0, metrics_interval=60.0, sync_interval=300.0, stagger=5.0, jitter=0.1
    )

    clock_now = [0.0]

    async def advancing_sleep(seconds: float) -> None:
        clock_now[0] += seconds
        await sleep(seconds)

    rand = random.Random(9)
    node = SimNode(
        identity_for("sim-000002", 2, rand),
        caller=manager,
        recorder=Recorder(t0=0.0),
        config=config,
        rand=rand,
        clock=lambda: clock_now[0],
        sleep=advancing_sleep,
        draining=draining,
    )
    await asyncio.wait_for(node.run_fleet(), 5.0)
    assert sleep.delays[0] <= 5.0  # the stagger
    assert manager.count(Method.REGISTER) == 1
    hb, metrics, sync = (manager.count(m) for m in (Method.HEARTBEAT, Method.METRICS, Method.SYNC))
    elapsed = clock_now[0]
    assert hb == pytest.approx(elapsed / 10.0, rel=0.15)
    assert metrics == pytest.approx(elapsed / 60.0, rel=0.25)
    assert sync >= 1


def test_pick_is_proportional() -> None:
    weights = (6.0, 1.0, 0.2)
    counts = [0, 0, 0]
    for i in range(7200):
        counts[pick(weights, i / 7200)] += 1
    assert counts == [6000, 1000, 200]
    assert pick((1.0, 0.0, 0.0), 0.999999) == 0
    with pytest.raises(ValueError):
        pick((0.0, 0.0), 0.5)


def test_jittered_stays_in_band() -> None:
    assert jittered(10.0, 0.1, 0.0) == pytest.approx(9.0)
    assert jittered(10.0, 0.1, 0.5) == pytest.approx(10.0)
    assert jittered(10.0, 0.1, 0.999) < 11.0
    assert jittered(10.0, 0.0, 0.7) == 10.0


async def test_fetches_config_only_when_the_heartbeat_hash_changes() -> None:
    manager = FakeManager()
    node, recorder = make_node(manager)
    await node.register()
    await node.heartbeat()
    assert Method.GET_CONFIG not in recorder.methods  # no hash from the manager: nothing to fetch
    manager.current_config_hash = "h1"
    await node.heartbeat()
    await node.heartbeat()
    assert node.config_hash == "h1" and node.config_fetches == 1
    manager.current_config_hash = "h2"
    await node.heartbeat()
    assert node.config_hash == "h2" and node.config_fetches == 2
    assert recorder.methods[Method.GET_CONFIG].calls == 2
    assert sum(recorder.curves["config_fetches"].values()) == 2
