"""The Collector protocol, the factory that builds collectors by name, and a fake for tests.

A collector samples one metric type of the host (``cpu``, ``memory``, ``disk``, ``network``)
and returns the keys of that type listed in PROTOCOL.md section 3, all as floats. Extra keys
may be added; none of the contract keys may be missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from opsfleet.common.errors import ConfigError
from opsfleet.daemon.collectors.cpu import CpuCollector
from opsfleet.daemon.collectors.disk import DiskCollector
from opsfleet.daemon.collectors.memory import MemoryCollector
from opsfleet.daemon.collectors.network import NetworkCollector

COLLECTOR_NAMES = ("cpu", "memory", "disk", "network")


class Collector(Protocol):
    """Samples one metric type.

    ``collect()`` is synchronous and fast: it never sleeps for a sampling interval (rates are
    computed between consecutive calls), so the caller may run it in the event loop or in a
    thread. A collector instance is not thread-safe; call it from one task at a time.
    """

    name: str

    def collect(self) -> dict[str, float]: ...


class FakeCollector:
    """A collector that returns a copy of fixed values; for tests of the code that uses collectors.

    ``values`` may be replaced between calls; ``calls`` counts ``collect()`` invocations.
    """

    def __init__(self, name: str, values: Mapping[str, float]) -> None:
        self.name = name
        self.values = dict(values)
        self.calls = 0

    def collect(self) -> dict[str, float]:
        self.calls += 1
        return dict(self.values)


def make_collector(
    name: str, *, mount_points: Sequence[str] = (), interfaces: Sequence[str] = ()
) -> Collector:
    """Build the real (psutil-backed) collector called ``name``.

    ``mount_points`` is used only by ``disk`` and ``interfaces`` only by ``network``; an empty
    selection means "all" (see the collector). Raises :class:`ConfigError` for an unknown name.
    """
    if name == "cpu":
        return CpuCollector()
    if name == "memory":
        return MemoryCollector()
    if name == "disk":
        return DiskCollector(mount_points=mount_points)
    if name == "network":
        return NetworkCollector(interfaces=interfaces)
    raise ConfigError(
        f"collectors: unknown collector {name!r} (expected one of {', '.join(COLLECTOR_NAMES)})"
    )
