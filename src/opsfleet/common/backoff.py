"""Exponential backoff with full jitter (the AWS architecture blog's "full jitter")."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before attempt n: uniform(0, min(cap, base * 2**n)).

    ``reset()`` after a healthy run starts again from ``base``. ``rand`` is injectable for tests.
    """

    base: float
    cap: float
    rand: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling: float = min(self.cap, self.base * math.pow(2.0, min(self.attempt, 62)))
        self.attempt += 1
        return max(0.0, ceiling * float(self.rand()))

    def reset(self) -> None:
        self.attempt = 0
