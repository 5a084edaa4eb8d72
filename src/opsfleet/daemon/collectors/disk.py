"""Disk collector: capacity of the selected mounts together, plus host-wide I/O counters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

import psutil

logger = logging.getLogger(__name__)


class Partition(NamedTuple):
    device: str
    mount_point: str


class Usage(NamedTuple):
    total: int
    used: int
    free: int


class IoTotals(NamedTuple):
    read_bytes: int
    write_bytes: int


def _psutil_partitions() -> list[Partition]:
    return [Partition(p.device, p.mountpoint) for p in psutil.disk_partitions(all=False)]


def _psutil_usage(path: str) -> Usage:
    usage = psutil.disk_usage(path)
    return Usage(usage.total, usage.used, usage.free)


def _psutil_io() -> IoTotals | None:
    try:
        counters = psutil.disk_io_counters(perdisk=False)
    except (OSError, RuntimeError, NotImplementedError):
        return None
    return None if counters is None else IoTotals(counters.read_bytes, counters.write_bytes)


class DiskCollector:
    """Keys: total_bytes, used_bytes, free_bytes, usage_percent, read_bytes, write_bytes, partition_count.

    Selection: empty ``mount_points`` means every physical partition, deduplicated by device (a
    device mounted twice counts once). Otherwise the listed paths, deduplicated by path; a listed
    path whose usage cannot be read (it does not exist, permission denied) is skipped and a
    warning is logged once (again only after it was readable in between); it is included as
    soon as it becomes readable.
    ``usage_percent`` is used/total*100 over the selection (0.0 for an empty selection) and
    ``partition_count`` the number of mounts actually summed.

    ``read_bytes``/``write_bytes`` are psutil's cumulative host-wide counters (all physical
    disks, not only the selection), 0.0 when unavailable. ``collect()`` does one ``statvfs``
    per mount; a hung network mount in the selection can therefore block it. The psutil
    functions are injectable for tests.
    """

    name = "disk"

    def __init__(
        self,
        *,
        mount_points: Sequence[str] = (),
        partitions: Callable[[], Sequence[Partition]] = _psutil_partitions,
        usage: Callable[[str], Usage] = _psutil_usage,
        io_counters: Callable[[], IoTotals | None] = _psutil_io,
    ) -> None:
        self._mount_points = tuple(dict.fromkeys(mount_points))
        self._partitions = partitions
        self._usage = usage
        self._io_counters = io_counters
        self._warned: set[str] = set()

    def _selected_paths(self) -> list[str]:
        if self._mount_points:
            return list(self._mount_points)
        by_device: dict[str, str] = {}
        for partition in self._partitions():
            by_device.setdefault(partition.device, partition.mount_point)
        return list(by_device.values())

    def collect(self) -> dict[str, float]:
        total = used = free = 0
        count = 0
        for path in self._selected_paths():
            try:
                usage = self._usage(path)
            except OSError as exc:
                if path not in self._warned:
                    self._warned.add(path)
                    logger.warning("disk collector: skipping mount point %s: %s", path, exc)
                continue
            self._warned.discard(path)
            total += usage.total
            used += usage.used
            free += usage.free
            count += 1
        io = self._io_counters()
        return {
            "total_bytes": float(total),
            "used_bytes": float(used),
            "free_bytes": float(free),
            "usage_percent": used / total * 100.0 if total > 0 else 0.0,
            "read_bytes": float(io.read_bytes) if io is not None else 0.0,
            "write_bytes": float(io.write_bytes) if io is not None else 0.0,
            "partition_count": float(count),
        }
