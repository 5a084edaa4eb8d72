"""CPU collector: usage since the previous sample, core count, frequency, cumulative CPU seconds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import psutil

logger = logging.getLogger(__name__)

CpuTimes = Mapping[str, float]
"""Cumulative CPU seconds by psutil field name (user, system, idle, iowait, ...)."""

# Guest time is already included in user/nice on Linux; counting it again would inflate the total.
_NOT_IN_TOTAL = frozenset({"guest", "guest_nice"})
_IDLE_FIELDS = ("idle", "iowait")


def _psutil_cpu_times() -> CpuTimes:
    return psutil.cpu_times()._asdict()


def _psutil_cores() -> int | None:
    return psutil.cpu_count(logical=True)


def _psutil_mhz() -> float | None:
    try:
        freq = psutil.cpu_freq()
    except (NotImplementedError, OSError, RuntimeError, AttributeError):
        return None
    return None if freq is None else float(freq.current)


def _total(times: CpuTimes) -> float:
    return sum(float(v) for k, v in times.items() if k not in _NOT_IN_TOTAL)


def _idle(times: CpuTimes) -> float:
    return sum(float(times.get(k, 0.0)) for k in _IDLE_FIELDS)


class CpuCollector:
    """Keys: usage_percent, cores, mhz, user, system, idle, iowait.

    ``usage_percent`` is the busy share of CPU time between this ``collect()`` and the previous
    one (the first call measures since construction), computed from ``cpu_times`` deltas, so no
    call blocks and no psutil-global state is shared with other callers. It is in [0, 100] and
    0.0 when no CPU time elapsed. ``iowait`` is 0.0 where the platform lacks it and ``mhz`` 0.0
    when the frequency is unavailable. The psutil functions are injectable for tests.
    """

    name = "cpu"

    def __init__(
        self,
        *,
        cpu_times: Callable[[], CpuTimes] = _psutil_cpu_times,
        cores: Callable[[], int | None] = _psutil_cores,
        mhz: Callable[[], float | None] = _psutil_mhz,
    ) -> None:
        self._cpu_times = cpu_times
        self._cores = cores
        self._mhz = mhz
        self._previous = dict(cpu_times())

    def collect(self) -> dict[str, float]:
        times = dict(self._cpu_times())
        total_delta = _total(times) - _total(self._previous)
        busy_delta = total_delta - (_idle(times) - _idle(self._previous))
        self._previous = times
        usage = 0.0 if total_delta <= 0 else min(100.0, max(0.0, busy_delta / total_delta * 100.0))
        return {
            "usage_percent": usage,
            "cores": float(self._cores() or 0),
            "mhz": float(self._mhz() or 0.0),
            "user": float(times.get("user", 0.0)),
            "system": float(times.get("system", 0.0)),
            "idle": float(times.get("idle", 0.0)),
            "iowait": float(times.get("iowait", 0.0)),
        }
