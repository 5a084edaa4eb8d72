"""Host metric collectors (cpu, memory, disk, network) behind one :class:`Collector` protocol."""

from __future__ import annotations

from opsfleet.daemon.collectors.base import COLLECTOR_NAMES, Collector, FakeCollector, make_collector
from opsfleet.daemon.collectors.cpu import CpuCollector
from opsfleet.daemon.collectors.disk import DiskCollector
from opsfleet.daemon.collectors.memory import MemoryCollector
from opsfleet.daemon.collectors.network import NetworkCollector

__all__ = [
    "COLLECTOR_NAMES",
    "Collector",
    "CpuCollector",
    "DiskCollector",
    "FakeCollector",
    "MemoryCollector",
    "NetworkCollector",
    "make_collector",
]
