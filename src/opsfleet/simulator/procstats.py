"""CPU% and RSS of a process (the Manager, or the simulator's own workers) sampled via psutil."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class ProcSample:
    t: float
    """Seconds since the start of the run."""
    cpu_percent: float
    """100 = one core fully busy (can exceed 100 on several cores)."""
    rss_bytes: int


@dataclass(frozen=True)
class ProcSummary:
    samples: int
    cpu_mean: float
    cpu_max: float
    rss_max: int
    rss_last: int


def summarize(samples: Sequence[ProcSample]) -> ProcSummary:
    if not samples:
        return ProcSummary(0, 0.0, 0.0, 0, 0)
    cpus = [s.cpu_percent for s in samples]
    return ProcSummary(
        samples=len(samples),
        cpu_mean=sum(cpus) / len(cpus),
        cpu_max=max(cpus),
        rss_max=max(s.rss_bytes for s in samples),
        rss_last=samples[-1].rss_bytes,
    )


@dataclass
class ProcessSampler:
    """Samples one or more processes as a group (CPU summed, RSS summed).

    ``sample()`` is called by the owner about once a second; the first call only primes
    psutil's CPU counters. Processes that have exited are skipped, so a Manager that is
    restarted under a new pid can be followed with :meth:`retarget`.
    """

    pids: list[int]
    samples: list[ProcSample] = field(default_factory=list)
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def retarget(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self._procs = {pid: p for pid, p in self._procs.items() if pid in self.pids}

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)
            except psutil.Error:
                return None
            self._procs[pid] = proc
            return None
        return proc

    def sample(self, t: float) -> ProcSample | None:
        cpu = 0.0
        rss = 0
        seen = 0
        for pid in self.pids:
            proc = self._process(pid)
            if proc is None:
                continue
            try:
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue
                    proc_cpu = proc.cpu_percent(None)
                    proc_rss = proc.memory_info().rss
            except psutil.Error:
                self._procs.pop(pid, None)
                continue
            if proc_rss == 0:  # exiting
                continue
            cpu += proc_cpu
            rss += proc_rss
            seen += 1
        if not seen:
            return None
        point = ProcSample(round(t, 3), round(cpu, 1), rss)
        self.samples.append(point)
        return point
