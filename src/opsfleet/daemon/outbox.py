"""The path every metric sample takes: collectors append to the on-disk spool, the link
delivers from it in order and acknowledges only what the manager confirmed.

A sample is checked with the manager's rules (``common.validation.check_sample``) before it
enters the spool: one that fails is quarantined (counted, logged once per reason) instead of
being spooled, and non-finite values are dropped (counted in ``values_dropped``).

All spool I/O runs in a worker thread under one lock, so the event loop never waits on fsync.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.validation import CheckedSample, check_sample, sample_error
from opsfleet.daemon.quarantine import Quarantine
from opsfleet.daemon.spool import Cursor, Spool

Record = dict[str, Any]


def check_record(record: object, index: int, *, now: float) -> CheckedSample:
    """A spool record ``{"type", "timestamp", "values"}`` checked like the manager does.

    Raises InvalidArgument (``metrics[<index>].<field>: <reason>``) for anything else, including
    records of an old or corrupt spool that are not even a JSON object.
    """
    if not isinstance(record, dict):
        raise sample_error(index, "record", f"a {type(record).__name__}, not an object")
    return check_sample(index, record.get("type"), record.get("timestamp"), record.get("values"), now=now)


class Outbox:
    def __init__(
        self, spool: Spool, *, quarantine: Quarantine | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._spool = spool
        self._lock = asyncio.Lock()
        self._clock = clock
        self.quarantine = quarantine or Quarantine()
        self.ready = asyncio.Event()
        self.appended = 0
        self.delivered = 0
        self.values_dropped = 0

    async def put(self, records: Sequence[Record]) -> None:
        """Spool the valid ``records`` (fsync'ed on return); quarantine the others."""
        now = self._clock()
        good: list[Record] = []
        for index, record in enumerate(records):
            try:
                sample = check_record(record, index, now=now)
            except InvalidArgument as exc:
                self.quarantine.add("collector", str(exc))
                continue
            self.values_dropped += sample.dropped_values
            good.append({"type": sample.type, "timestamp": sample.timestamp, "values": sample.values})
        if not good:
            return
        async with self._lock:
            await asyncio.to_thread(self._spool.append, good)
        self.appended += len(good)
        self.ready.set()

    async def peek(self, max_records: int) -> tuple[list[Record], Cursor]:
        async with self._lock:
            return await asyncio.to_thread(self._spool.peek, max_records)

    async def ack(self, cursor: Cursor, delivered: int) -> None:
        """Remove everything up to ``cursor``; ``delivered`` of those records reached the manager."""
        async with self._lock:
            await asyncio.to_thread(self._spool.ack, cursor)
        self.delivered += delivered

    async def pending(self) -> int:
        async with self._lock:
            return await asyncio.to_thread(self._spool.pending)

    @property
    def dropped(self) -> int:
        return self._spool.dropped

    async def close(self) -> None:
        async with self._lock:
            self._spool.close()
