"""What an agent's state machine reacts to, and the inbox its owner task reads them from."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Literal

from opsfleet.daemon.supervisor.clock import Clock

Operation = Literal["start", "stop", "restart"]
OPERATIONS: tuple[Operation, ...] = ("start", "stop", "restart")
TimerKind = Literal["started", "stable", "kill", "abandon", "retry"]


@dataclass(frozen=True)
class Command:
    """An operator's operation; ``accepted`` resolves once acted on, ``done`` once finished."""

    op: Operation
    accepted: asyncio.Future[None]
    done: asyncio.Future[None] | None


@dataclass(frozen=True)
class Shutdown:
    done: asyncio.Future[None]


@dataclass(frozen=True)
class Timer:
    kind: TimerKind
    deadline: float


@dataclass(frozen=True)
class Exited:
    """The process of run ``run_id`` exited with ``returncode`` (negative: killed by a signal)."""

    run_id: int
    returncode: int


@dataclass(frozen=True)
class Unhealthy:
    """A health check of run ``run_id`` failed."""

    run_id: int
    reason: str


RunEvent = Exited | Unhealthy
Event = Command | Shutdown | Timer | Exited | Unhealthy


class Inbox:
    """Posted events, commands put aside for later, and the one pending timer.

    Each state has at most one timer (start grace, stability, kill, backoff), so there is a
    single slot: arming replaces it and ``clear_timer()`` (on every transition) drops it, so a
    stale timer never fires. Deadlines are on the injected clock's monotonic time. Read only
    by the owner task; any task may ``post``.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queue: collections.deque[Event] = collections.deque()
        self._posted = asyncio.Event()
        self._deferred: collections.deque[Command] = collections.deque()
        self._timer: Timer | None = None

    def post(self, event: Event) -> None:
        self._queue.append(event)
        self._posted.set()

    def defer(self, command: Command) -> None:
        self._deferred.append(command)

    def take_deferred(self, *, drain: bool = False) -> list[Command]:
        """The commands put aside; with ``drain`` also every command still queued (on the way out)."""
        commands = list(self._deferred)
        self._deferred.clear()
        while drain and self._queue:
            event = self._queue.popleft()
            if isinstance(event, Command):
                commands.append(event)
        return commands

    def arm(self, kind: TimerKind, seconds: float) -> None:
        self._timer = Timer(kind, self._clock.monotonic() + max(0.0, seconds))

    def clear_timer(self) -> None:
        self._timer = None

    async def next(self, *, replay_deferred: bool) -> Event:
        """The next event: a deferred command (when allowed), a posted event, or the due timer."""
        if replay_deferred and self._deferred:
            return self._deferred.popleft()
        while True:
            if self._queue:
                return self._queue.popleft()
            self._posted.clear()
            timer = self._timer
            if timer is None:
                await self._posted.wait()
                continue
            delay = timer.deadline - self._clock.monotonic()
            if delay <= 0:
                self._timer = None
                return timer
            await self._clock.wait(self._posted, delay)
