"""What follows when an agent's process ends on its own or fails a health check.

* Policy ``always``: restart after a backoff. ``on-failure``: exit code 0 ends in
  ``stopped``; non-zero exits, signals and failed health checks restart. ``never``: exit
  code 0 ends in ``stopped``, anything else (and failed health checks) in ``failed``.
* A restart waits ``max(backoff_base, full-jitter exponential)`` capped at ``backoff_max``.
* After ``max_retries`` automatic restarts within ``retry_window`` the agent is ``failed``.
  A run that stays up ``stable_after`` seconds (or an operator's start) resets the count.
* An operator's stop is not decided here: nothing restarts a stopped agent.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from opsfleet.common.backoff import Backoff
from opsfleet.daemon.supervisor.config import RestartSection


class RestartBudget:
    """At most ``max_retries`` automatic restarts within ``retry_window`` seconds.

    Delays grow exponentially with full jitter, floored at ``backoff_base`` and capped at
    ``backoff_max``. ``reset()`` after a stable run (or an operator's start) starts afresh.
    Times are monotonic seconds.
    """

    def __init__(self, restart: RestartSection, rand: Callable[[], float] = random.random) -> None:
        self._restart = restart
        self._backoff = Backoff(restart.backoff_base, restart.backoff_max, rand)
        self._times: collections.deque[float] = collections.deque()

    @property
    def used(self) -> int:
        """Restarts counted in the current window (as of the last ``take``)."""
        return len(self._times)

    def take(self, now: float) -> float | None:
        """The delay before the next restart, or None when the budget is exhausted."""
        while self._times and now - self._times[0] > self._restart.retry_window:
            self._times.popleft()
        if len(self._times) >= self._restart.max_retries:
            return None
        self._times.append(now)
        delay = max(self._restart.backoff_base, self._backoff.next_delay())
        return min(self._restart.backoff_max, delay)

    def reset(self) -> None:
        self._times.clear()
        self._backoff.reset()


@dataclass(frozen=True)
class Decision:
    outcome: Literal["stopped", "failed", "backoff"]
    reason: str
    delay: float = 0.0


def decide(
    restart: RestartSection, budget: RestartBudget, reason: str, *, failure: bool, now: float
) -> Decision:
    """The outcome of an exit or failed check described by ``reason`` (``failure``: not exit code 0)."""
    if restart.policy == "never" or (restart.policy == "on-failure" and not failure):
        return Decision("failed" if failure else "stopped", f"{reason}; restart policy {restart.policy}")
    delay = budget.take(now)
    if delay is None:
        return Decision(
            "failed", f"{reason}; gave up after {budget.used} restarts within {restart.retry_window:g}s"
        )
    return Decision("backoff", reason, delay)
