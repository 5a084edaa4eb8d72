"""Time behind a Protocol: wall time for timestamps, a monotonic clock for every timer.

The supervisor never calls ``time.monotonic()`` or sleeps with ``asyncio`` directly: start
grace, stability, stop timeouts, restart backoff, retry windows, health-check intervals and
heartbeat timeouts all read :meth:`Clock.monotonic` and wait with :meth:`Clock.wait`, so a
test can hand in :class:`~opsfleet.daemon.supervisor.fakes.FakeClock` and skip minutes of
backoff at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Unix time in seconds (for timestamps that leave the process, never for timeouts)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts, intervals, windows)."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` monotonic seconds passed; True when set."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout))
        return event.is_set()
