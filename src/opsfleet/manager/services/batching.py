"""Group commit: many concurrent callers, one transaction.

``submit(item)`` queues an item and waits until the writer task has committed it together
with whatever else was queued meanwhile (up to ``max_batch`` units). The reply to an RPC
is therefore sent only after its data is durable, yet a burst of N calls costs a handful
of transactions instead of N. Beyond ``max_queued`` units the committer sheds load with
ResourceExhausted (and a retry delay) instead of queueing without bound.

Failure isolation: a batch that fails for a data reason (``InvalidArgument``: the store
raises it when the database rejects a value) is retried member by member, so only the
caller whose item is bad gets the error and every other caller's item is committed.
Availability failures (``Unavailable`` and anything else) fail the whole batch: every
caller gets UNAVAILABLE with a retry delay and may send again.

Lifecycle: ``start()`` spawns the writer; ``stop()`` refuses new items, commits what is
queued and returns; it is idempotent. If the writer task dies (a bug, an error its batch
handling does not expect), every waiting caller gets Unavailable at once, new items are
refused, and the crash goes to the process's crash policy (common/lifecycle.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from opsfleet.common.errors import InvalidArgument, OpsfleetError, ResourceExhausted, Unavailable
from opsfleet.common.lifecycle import CrashHandler, TaskOwner, current_crash_handler

log = logging.getLogger(__name__)

CRASH_RETRY_AFTER = 5.0  # the process is stopping (a supervisor restarts it after a crash)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T, R]):
    item: T
    units: int
    done: asyncio.Future[R]


class GroupCommitter(Generic[T, R]):
    """``commit(items)`` returns one result per item, in order, or raises for the whole batch.

    ``commit`` must be all-or-nothing (one transaction), so a failed batch can be retried."""

    def __init__(
        self,
        name: str,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int,
        max_queued: int,
        units: Callable[[T], int] = lambda _item: 1,
        observer: Callable[[int, float], None] | None = None,
    ) -> None:
        self._name = name
        self._commit = commit
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._units = units
        self.observer = observer
        self._queue: asyncio.Queue[_Pending[T, R] | None] = asyncio.Queue()
        self._queued = 0
        self._accepting = False
        self._tasks = TaskOwner(name, on_crash=self._crashed)
        self._escalate: CrashHandler | None = None
        self._current: list[_Pending[T, R]] = []
        self.batches = 0
        self.units_committed = 0

    async def start(self) -> None:
        self._accepting = True
        self._escalate = current_crash_handler()
        self._tasks.spawn("writer", self._writer())

    async def stop(self) -> None:
        if self._accepting:
            self._accepting = False
            await self._queue.put(None)
        await self._tasks.stop(timeout=30.0)
        self._fail_waiting(Unavailable(f"{self._name} stopped before committing this item"))

    def _crashed(self, name: str, exc: BaseException) -> None:
        self._accepting = False
        self._fail_waiting(Unavailable(f"{self._name} failed; retry later", retry_after=CRASH_RETRY_AFTER))
        if self._escalate is not None:
            self._escalate(name, exc)

    def _fail_waiting(self, error: Unavailable) -> None:
        """Fail the batch being written and everything queued (the writer is gone)."""
        waiting, self._current = self._current, []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                waiting.append(item)
        self._queued = 0
        for pending in waiting:
            if not pending.done.done():
                pending.done.set_exception(error)

    @property
    def queued(self) -> int:
        return self._queued

    async def submit(self, item: T) -> R:
        if not self._accepting:
            raise Unavailable("manager is shutting down", retry_after=CRASH_RETRY_AFTER)
        units = self._units(item)
        if self._queued + units > self._max_queued:
            raise ResourceExhausted(
                f"{self._name} queue is full ({self._queued} queued)", retry_after=random.uniform(1.0, 3.0)
            )
        self._queued += units
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(item, units, done))
        return await done

    async def _writer(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                stopping = True
                batch: list[_Pending[T, R]] = []
                units = 0
            else:
                batch = [first]
                units = first.units
            while units < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    continue
                batch.append(nxt)
                units += nxt.units
            if batch:
                self._current = batch
                await self._write(batch, units)
                self._current = []

    async def _write(self, batch: list[_Pending[T, R]], units: int) -> None:
        self._queued -= units
        started = time.perf_counter()
        try:
            results = await self._commit([p.item for p in batch])
        except InvalidArgument as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            log.warning(
                "%s: batch of %d rejected (%s); committing its items one by one", self._name, units, exc
            )
            await self._one_by_one(batch)
            return
        except Exception as exc:
            log.warning("%s: batch of %d failed: %s", self._name, units, exc)
            error = _unavailable(self._name, exc)
            for pending in batch:
                _fail(pending, error)
            return
        self._committed(units, time.perf_counter() - started)
        for pending, result in zip(batch, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(result)

    async def _one_by_one(self, batch: list[_Pending[T, R]]) -> None:
        """Commit each member alone: the culprits get their error, the others their result."""
        for pending in batch:
            started = time.perf_counter()
            try:
                (result,) = await self._commit([pending.item])
            except InvalidArgument as exc:
                _fail(pending, exc)
                continue
            except Exception as exc:
                _fail(pending, _unavailable(self._name, exc))
                continue
            self._committed(pending.units, time.perf_counter() - started)
            if not pending.done.done():
                pending.done.set_result(result)

    def _committed(self, units: int, seconds: float) -> None:
        self.batches += 1
        self.units_committed += units
        if self.observer is not None:
            self.observer(units, seconds)


def _fail(pending: _Pending[T, R], error: BaseException) -> None:
    if not pending.done.done():
        pending.done.set_exception(error)


def _unavailable(name: str, exc: Exception) -> OpsfleetError:
    if isinstance(exc, OpsfleetError):
        return exc
    # Not from the store's error translation: no foreign text goes back to callers.
    log.error("%s: unexpected failure", name, exc_info=exc)
    return Unavailable(f"{name} failed; try again", retry_after=2.0)
