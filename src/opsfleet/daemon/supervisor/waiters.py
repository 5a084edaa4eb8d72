"""Callers of ``operate()`` waiting for an agent to reach running (up) or stopped (down)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from opsfleet.common.errors import Unavailable
from opsfleet.daemon.supervisor.states import AgentStatus

Want = Literal["up", "down"]


@dataclass(frozen=True)
class _Waiter:
    want: Want
    future: asyncio.Future[None]


class Waiters:
    """Futures resolved by the state machine's transitions (owner task only).

    An "up" waiter succeeds on running and fails with Unavailable on failed or stopped; a
    "down" waiter succeeds on stopped. A future cancelled by its caller (timeout) is dropped.
    """

    def __init__(self, agent_id: str) -> None:
        self._agent_id = agent_id
        self._waiting: list[_Waiter] = []

    def add(self, want: Want, future: asyncio.Future[None], state: AgentStatus) -> None:
        if (want == "up" and state is AgentStatus.RUNNING) or (
            want == "down" and state is AgentStatus.STOPPED
        ):
            future.set_result(None)
        else:
            self._waiting.append(_Waiter(want, future))

    def settle(self, new: AgentStatus, reason: str) -> None:
        keep: list[_Waiter] = []
        for waiter in self._waiting:
            future = waiter.future
            if future.done():
                continue
            if waiter.want == "down":
                if new is AgentStatus.STOPPED:
                    future.set_result(None)
                else:
                    keep.append(waiter)
            elif new is AgentStatus.RUNNING:
                future.set_result(None)
            elif new in (AgentStatus.FAILED, AgentStatus.STOPPED):
                future.set_exception(
                    Unavailable(f"agent {self._agent_id} did not reach running: {new.value} ({reason})")
                )
            else:
                keep.append(waiter)
        self._waiting = keep

    def fail_all(self, error: Exception) -> None:
        for waiter in self._waiting:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        self._waiting = []
