"""Wall-clock time behind a Protocol, so tests can pin timestamps."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Unix time in seconds (for timestamps that leave the process, never for timeouts)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()
