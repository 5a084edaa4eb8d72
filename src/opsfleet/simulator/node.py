"""One simulated daemon: registration, its call schedule, and how it reacts to errors.

Reactions mirror the daemon's link loop (STYLE.md habit 10):

* ``NOT_FOUND`` for a heartbeat, metrics report or agent sync: the Manager does not know
  the node (wiped database, say), so it registers again at once and carries on.
* ``UNAVAILABLE``: the session is gone (Manager restarting). Back off with full jitter, then
  start a new session as the daemon does: a heartbeat (retried with growing full-jitter
  delays while the Manager is unavailable), then the agent states at once. No registration:
  the Manager keeps its nodes across restarts and answers NOT_FOUND when it does not.
* ``RESOURCE_EXHAUSTED`` / ``DEADLINE_EXCEEDED``: back off, then carry on.
* Anything else is counted and the schedule carries on.

Once ``draining`` is set a node starts no new call: the call it would have made raises
:class:`Drained` instead, which ends its task (calls already in flight complete normally).

A node is driven by one task in fleet mode; in saturate mode several lanes may call the
same node concurrently, which is harmless (the state is only counters and a backoff).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from opsfleet.common.backoff import Backoff
from opsfleet.simulator.calls import Caller, Method
from opsfleet.simulator.config import SimConfig
from opsfleet.simulator.payloads import AgentSet, MachineModel, NodeIdentity
from opsfleet.simulator.stats import OK, Recorder

Sleep = Callable[[float], Awaitable[None]]

BACKOFF_THEN_CONTINUE = frozenset({"RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})


class Drained(Exception):
    """The run is ending: this node starts no more calls."""


class InFlight:
    """Calls started and not yet answered, counted over all nodes of one worker."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def pick(weights: tuple[float, ...], u: float) -> int:
    """Index chosen by ``u`` in [0, 1) with probability proportional to ``weights``."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    threshold = u * total
    running = 0.0
    for index, weight in enumerate(weights):
        running += weight
        if threshold < running:
            return index
    return max(i for i, w in enumerate(weights) if w > 0)


def jittered(interval: float, jitter: float, u: float) -> float:
    """``interval`` scaled by a factor in [1 - jitter, 1 + jitter) chosen by ``u`` in [0, 1)."""
    return interval * (1.0 - jitter + 2.0 * jitter * u)


@dataclass
class _Timer:
    interval: float
    action: Callable[[], Awaitable[None]]
    due: float = 0.0


class SimNode:
    """A simulated daemon; its calls go through ``caller`` and are recorded in ``recorder``."""

    def __init__(
        self,
        identity: NodeIdentity,
        *,
        caller: Caller,
        recorder: Recorder,
        config: SimConfig,
        rand: random.Random,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        draining: asyncio.Event | None = None,
        inflight: InFlight | None = None,
    ) -> None:
        self.identity = identity
        self._caller = caller
        self._recorder = recorder
        self._config = config
        self._rand = rand
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._draining = draining if draining is not None else asyncio.Event()
        self._inflight = inflight if inflight is not None else InFlight()
        self._machine = MachineModel(rand, wall())
        self._agents = AgentSet(config.agents_per_node, rand)
        self._backoff = Backoff(config.backoff_base, config.backoff_cap, rand=rand.random)
        self._failing = False
        self._last_metrics_ts = 0
        self.config_hash = ""
        self.config_fetches = 0
        self.registered = False
        self.registrations = 0

    @property
    def failing(self) -> bool:
        """True while the node's last call failed."""
        return self._failing

    async def _call(self, method: Method, call: Coroutine[Any, Any, str]) -> str:
        if self._draining.is_set():
            call.close()
            raise Drained
        started = time.perf_counter()
        self._inflight.enter()
        try:
            code = await call
        finally:
            self._inflight.leave()
        self._recorder.record(
            method, code, time.perf_counter() - started, registration=method is Method.REGISTER
        )
        if code == OK:
            self._backoff.reset()
            if self._failing:
                self._failing = False
                self._recorder.recovered()
        else:
            self._failing = True
        return code

    async def register(self) -> None:
        """Register, retrying with full-jitter backoff until it succeeds (or the task is cancelled)."""
        while await self._call(Method.REGISTER, self._caller.register(self.identity)) != OK:
            await self._sleep(self._backoff.next_delay())
        self.registered = True
        self.registrations += 1

    async def heartbeat(self) -> None:
        code = await self._call(Method.HEARTBEAT, self._caller.heartbeat(self.identity, int(self._wall())))
        await self._react(code)
        if code == OK:
            await self.fetch_config_if_changed()

    async def fetch_config_if_changed(self) -> None:
        """Like the daemon: GetConfig when the heartbeat's config hash is not the one held."""
        wanted = self._caller.config_hash(self.identity)
        if not wanted or wanted == self.config_hash:
            return
        code, got = await self._get_config()
        if code == OK:
            self.config_hash = got or wanted
            self.config_fetches += 1
        await self._react(code)

    async def _get_config(self) -> tuple[str, str]:
        if self._draining.is_set():
            raise Drained
        started = time.perf_counter()
        self._inflight.enter()
        try:
            code, got = await self._caller.get_config(self.identity)
        finally:
            self._inflight.leave()
        self._recorder.record(Method.GET_CONFIG, code, time.perf_counter() - started)
        return code, got

    async def report_metrics(self) -> None:
        now = self._wall()
        # Back-to-back reports (saturate mode) get distinct seconds so each one stores new rows.
        timestamp = max(int(now), self._last_metrics_ts + 1)
        self._last_metrics_ts = timestamp
        metrics = self._machine.sample(now)
        code = await self._call(
            Method.METRICS, self._caller.report_metrics(self.identity, timestamp, metrics)
        )
        await self._react(code)

    async def sync_agents(self) -> None:
        states = self._agents.states(int(self._wall()))
        code = await self._call(Method.SYNC, self._caller.sync_agents(self.identity, states))
        await self._react(code)

    async def _react(self, code: str) -> None:
        if code == OK:
            return
        if code == "NOT_FOUND":
            await self.register()
        elif code == "UNAVAILABLE":
            await self.new_session()
        elif code in BACKOFF_THEN_CONTINUE:
            await self._sleep(self._backoff.next_delay())

    async def new_session(self) -> None:
        """After UNAVAILABLE, like the daemon's link (opsfleet.daemon.link): back off, then a
        heartbeat until the Manager answers, then the agent states; NOT_FOUND registers."""
        code = "UNAVAILABLE"
        while code == "UNAVAILABLE":
            await self._sleep(self._backoff.next_delay())
            beat = self._caller.heartbeat(self.identity, int(self._wall()))
            code = await self._call(Method.HEARTBEAT, beat)
        if code == "NOT_FOUND":
            await self.register()
        elif code != OK:
            return
        states = self._agents.states(int(self._wall()))
        if await self._call(Method.SYNC, self._caller.sync_agents(self.identity, states)) == "NOT_FOUND":
            await self.register()

    def actions(self) -> tuple[Callable[[], Awaitable[None]], ...]:
        """Heartbeat, metrics and sync, in the order of :meth:`SimConfig.call_weights`."""
        return (self.heartbeat, self.report_metrics, self.sync_agents)

    async def run_fleet(self) -> None:
        """Wait a random part of the stagger, register, then follow the three jittered
        schedules (each starting at a random phase) until draining or cancelled."""
        try:
            await self._fleet_schedule()
        except Drained:
            return

    async def _fleet_schedule(self) -> None:
        cfg = self._config
        await self._sleep(self._rand.uniform(0.0, cfg.stagger))
        await self.register()
        intervals = (cfg.heartbeat_interval, cfg.metrics_interval, cfg.sync_interval)
        now = self._clock()
        timers = [
            _Timer(interval, action, now + self._rand.uniform(0.0, interval))
            for interval, action in zip(intervals, self.actions(), strict=True)
            if interval > 0
        ]
        while True:
            timer = min(timers, key=lambda t: t.due)
            delay = timer.due - self._clock()
            if delay > 0:
                await self._sleep(delay)
            timer.due = self._clock() + jittered(timer.interval, cfg.jitter, self._rand.random())
            await timer.action()
