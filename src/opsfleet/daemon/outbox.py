"""The path every metric sample takes: collectors append to the on-disk spool, the link
delivers from it in order and acknowledges only what the manager confirmed.

All spool I/O runs in a worker thread under one lock, so the event loop never waits on fsync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from opsfleet.daemon.spool import Cursor, Spool

Record = dict[str, Any]


class Outbox:
    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.appended = 0
        self.delivered = 0

    async def put(self, records: Sequence[Record]) -> None:
        async with self._lock:
            await asyncio.to_thread(self._spool.append, records)
        self.appended += len(records)
        self.ready.set()

    async def peek(self, max_records: int) -> tuple[list[Record], Cursor]:
        async with self._lock:
            return await asyncio.to_thread(self._spool.peek, max_records)

    async def ack(self, cursor: Cursor, count: int) -> None:
        async with self._lock:
            await asyncio.to_thread(self._spool.ack, cursor)
        self.delivered += count

    async def pending(self) -> int:
        async with self._lock:
            return await asyncio.to_thread(self._spool.pending)

    @property
    def dropped(self) -> int:
        return self._spool.dropped

    async def close(self) -> None:
        async with self._lock:
            self._spool.close()
