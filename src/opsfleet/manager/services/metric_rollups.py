"""The rollup job: the elected replica finalizes closed 5-minute buckets and their hours.

Every ``interval`` seconds the leader runs a pass: steps of the store's rollup job
(store/metric_rollups_sql.py), each one bounded and committed with the watermark, until
nothing is due, leadership is lost or the job stops. A replica that is not the leader only
refreshes its cached watermark (its metrics transactions use it to spot late samples).

Lifecycle: ``start()`` spawns one owned task; ``stop()`` (idempotent, safe before
``start()``) lets the running step commit or roll back, and no step starts after it returns.
A failing pass is logged and retried next interval. A newly elected replica runs a pass at
once (:meth:`leadership_changed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.store.metric_rollup_mark import RollupMark, RollupStep

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
PROGRESS_EVERY = 10.0
"""Seconds between progress lines of a long pass (catch-up)."""


class RollupSteps(Protocol):
    async def step(self, now: float) -> RollupStep: ...

    async def refresh_mark(self) -> RollupMark: ...


@dataclass
class PassResult:
    steps: int = 0
    points: int = 0
    samples: int = 0
    buckets: int = 0
    folded: int = 0
    seconds: float = 0.0
    mark: RollupMark | None = None

    @property
    def rate(self) -> float:
        """Samples folded per second of the pass."""
        return self.samples / self.seconds if self.seconds > 0 else 0.0


class RollupJob:
    def __init__(
        self,
        steps: RollupSteps,
        *,
        interval: float = DEFAULT_INTERVAL,
        is_leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._steps = steps
        self._interval = interval
        self._is_leader = is_leader
        self._clock = clock
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks = TaskOwner("metric-rollups")
        self._turn = asyncio.Lock()
        self.passes = 0
        """Passes run by this replica (as leader)."""

    async def start(self) -> None:
        self._tasks.spawn("job", self._loop())

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        await self._tasks.stop(timeout=30.0)

    def leadership_changed(self, leader: bool) -> None:
        """A replica just elected runs a pass now instead of at the end of its interval."""
        if leader:
            self._wake.set()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._is_leader():
                    await self.run_pass()
                else:
                    await self._steps.refresh_mark()
            except Exception:
                log.exception("metric rollup pass failed; will retry")
            await sleep_or_stop(self._wake, self._interval)
            self._wake.clear()

    async def run_pass(self) -> PassResult:
        """Steps until nothing is due (or leadership is lost, or the job stops); one pass at
        a time per process."""
        async with self._turn:
            return await self._pass()

    async def _pass(self) -> PassResult:
        result = PassResult()
        started = time.monotonic()
        reported = started
        while not self._stop.is_set() and self._is_leader():
            step = await self._steps.step(self._clock())
            result.mark = step.mark
            if step.kind in ("idle", "conflict"):
                break
            result.steps += 1
            result.points += step.points
            result.samples += step.samples
            result.buckets += step.buckets
            result.folded += step.folded
            now = time.monotonic()
            if now - reported >= PROGRESS_EVERY:
                reported = now
                log.info(
                    "metric rollups: catching up, final to %d (%d s behind), %d samples so far",
                    step.mark.done,
                    int(self._clock()) - step.mark.done,
                    result.samples,
                )
            await asyncio.sleep(0)
        result.seconds = time.monotonic() - started
        self.passes += 1
        if result.steps:
            log.debug(
                "metric rollups: %d steps, %d samples, %d buckets in %.3f s",
                result.steps,
                result.samples,
                result.buckets,
                result.seconds,
            )
        return result
