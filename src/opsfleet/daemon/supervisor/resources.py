"""Resource usage of an agent (its process and all descendants) and its bounded history.

:class:`ProcessSampler` reads one process tree with psutil. :class:`ResourceHistory` keeps
the samples of the last ``retention`` seconds in memory and in an append-only JSON-lines
file in the state directory, so the history survives daemon restarts. The file is compacted
(rewritten atomically without expired samples) on load and whenever it has grown to about
twice what is still kept. Both are used from the event loop thread only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import psutil

from opsfleet.daemon.supervisor.metadata import atomic_write

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 24 * 3600.0
DEFAULT_MAX_POINTS = 100_000
COMPACT_SLACK = 1000


@dataclass(frozen=True)
class ResourcePoint:
    """One sample. ``cpu`` is percent of one core over the last interval; disk bytes are cumulative."""

    timestamp: float
    cpu: float
    memory_rss: int
    memory_vms: int
    disk_read_bytes: int
    disk_write_bytes: int
    open_files: int


class ProcessSampler:
    """Samples the process ``pid`` and its descendants; ``None`` once the process is gone."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._root: psutil.Process | None = None
        self._prev: tuple[float, float] | None = None

    def sample(self, now: float) -> ResourcePoint | None:
        try:
            if self._root is None:
                self._root = psutil.Process(self._pid)
            root = self._root
            procs = [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        cpu_seconds = 0.0
        rss = vms = read_bytes = write_bytes = open_files = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info()
                    cpu_seconds += times.user + times.system
                    rss += memory.rss
                    vms += memory.vms
                    with contextlib.suppress(psutil.AccessDenied, AttributeError, NotImplementedError):
                        io = proc.io_counters()
                        read_bytes += io.read_bytes
                        write_bytes += io.write_bytes
                    with contextlib.suppress(psutil.AccessDenied):
                        open_files += len(proc.open_files())
            except psutil.NoSuchProcess:
                if proc is root:
                    return None
            except psutil.AccessDenied:
                continue
        mono = time.monotonic()
        if self._prev is None:
            # First sample: the average since the process started is the best rate we have.
            try:
                elapsed = max(now - root.create_time(), 1e-3)
            except psutil.Error:
                elapsed = 1.0
            cpu = cpu_seconds / elapsed * 100.0
        else:
            prev_mono, prev_cpu = self._prev
            # A descendant that exited takes its CPU time with it; never report a negative rate.
            cpu = max(0.0, cpu_seconds - prev_cpu) / max(mono - prev_mono, 1e-3) * 100.0
        self._prev = (mono, cpu_seconds)
        return ResourcePoint(
            timestamp=now,
            cpu=round(cpu, 2),
            memory_rss=rss,
            memory_vms=vms,
            disk_read_bytes=read_bytes,
            disk_write_bytes=write_bytes,
            open_files=open_files,
        )


def _parse(line: str) -> ResourcePoint | None:
    try:
        data = json.loads(line)
        return ResourcePoint(
            timestamp=float(data["timestamp"]),
            cpu=float(data["cpu"]),
            memory_rss=int(data["memory_rss"]),
            memory_vms=int(data["memory_vms"]),
            disk_read_bytes=int(data["disk_read_bytes"]),
            disk_write_bytes=int(data["disk_write_bytes"]),
            open_files=int(data["open_files"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


def _dump(point: ResourcePoint) -> str:
    return json.dumps(asdict(point), separators=(",", ":")) + "\n"


class ResourceHistory:
    """The samples of one agent from the last ``retention`` seconds, persisted at ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        retention: float = DEFAULT_RETENTION,
        max_points: int = DEFAULT_MAX_POINTS,
        compact_slack: int = COMPACT_SLACK,
    ) -> None:
        self.path = path
        self._retention = retention
        self._points: deque[ResourcePoint] = deque(maxlen=max_points)
        self._compact_slack = compact_slack
        self._fh: TextIO | None = None
        self._lines_in_file = 0
        self._failing = False

    def load(self, now: float) -> None:
        """Read the file (torn or corrupt lines are skipped) and compact it."""
        self._points.clear()
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read resource history %s: %s", self.path, exc)
            return
        skipped = 0
        horizon = now - self._retention
        for line in text.splitlines():
            point = _parse(line)
            if point is None:
                skipped += 1
            elif point.timestamp >= horizon:
                self._points.append(point)
        if skipped:
            log.warning("skipped %d unreadable lines in %s", skipped, self.path)
        self.compact()

    def append(self, point: ResourcePoint) -> None:
        horizon = point.timestamp - self._retention
        while self._points and self._points[0].timestamp < horizon:
            self._points.popleft()
        self._points.append(point)
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(_dump(point))
            self._fh.flush()
            self._lines_in_file += 1
            self._failing = False
        except OSError as exc:
            if not self._failing:
                log.warning("cannot write resource history %s: %s", self.path, exc)
            self._failing = True
            self._close_file()
        if self._lines_in_file > 2 * len(self._points) + self._compact_slack:
            self.compact()

    def since(self, start: float) -> list[ResourcePoint]:
        """Samples with ``timestamp >= start``, oldest first."""
        return [p for p in self._points if p.timestamp >= start]

    def latest(self) -> ResourcePoint | None:
        return self._points[-1] if self._points else None

    def compact(self) -> None:
        """Rewrite the file with only the kept samples (atomically)."""
        self._close_file()
        try:
            atomic_write(self.path, "".join(_dump(p) for p in self._points).encode("utf-8"))
            self._lines_in_file = len(self._points)
        except OSError as exc:
            log.warning("cannot compact resource history %s: %s", self.path, exc)

    def close(self) -> None:
        self._close_file()

    def _close_file(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
