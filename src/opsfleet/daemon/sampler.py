"""Runs each enabled collector on its own interval and puts every sample into the outbox."""

from __future__ import annotations

import asyncio
import logging
import time

from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.daemon.collectors import Collector, make_collector
from opsfleet.daemon.config import CollectorsSection
from opsfleet.daemon.outbox import Outbox

log = logging.getLogger(__name__)


def build_collectors(section: CollectorsSection) -> list[tuple[Collector, float]]:
    """The enabled collectors with their intervals."""
    out: list[tuple[Collector, float]] = []
    for name in ("cpu", "memory", "disk", "network"):
        cfg = getattr(section, name)
        if not cfg.enabled:
            continue
        collector = make_collector(
            name, mount_points=section.disk.mount_points, interfaces=section.network.interfaces
        )
        out.append((collector, cfg.interval))
    return out


class Sampler:
    """One owned task per collector. ``apply()`` swaps the set (config reload); ``stop()`` is idempotent."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("sampler")
        self.samples_taken = 0

    async def apply(self, section: CollectorsSection) -> None:
        await self.stop()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("sampler")
        collectors = build_collectors(section)
        for collector, interval in collectors:
            self._tasks.spawn(collector.name, self._loop(collector, interval))
        log.info(
            "collectors: %s",
            ", ".join(f"{c.name} every {i:g}s" for c, i in collectors) or "none enabled",
        )

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop(timeout=2.0)

    async def _loop(self, collector: Collector, interval: float) -> None:
        wait = min(interval, 1.0)  # first sample soon after start, then every interval
        while not await sleep_or_stop(self._stop, wait):
            wait = interval
            started = time.time()
            try:
                values = await asyncio.to_thread(collector.collect)
            except Exception:
                log.exception("collector %s failed; skipping this sample", collector.name)
                continue
            record = {"type": collector.name, "timestamp": int(started), "values": values}
            await self._outbox.put([record])
            self.samples_taken += 1
