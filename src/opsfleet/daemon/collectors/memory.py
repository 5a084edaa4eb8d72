"""Memory collector: physical memory and swap."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import psutil

MemoryStats = Mapping[str, float]
"""psutil field name -> value (bytes, or percent for ``percent``)."""


def _psutil_virtual_memory() -> MemoryStats:
    return psutil.virtual_memory()._asdict()


def _psutil_swap_memory() -> MemoryStats:
    return psutil.swap_memory()._asdict()


class MemoryCollector:
    """Keys: total_bytes, used_bytes, free_bytes, available_bytes, usage_percent, cached, buffers,
    swap_total, swap_used, swap_free, swap_percent.

    ``usage_percent`` is psutil's ``(total - available) / total * 100``. ``cached`` and ``buffers``
    are 0.0 on platforms that lack them. The psutil functions are injectable for tests.
    """

    name = "memory"

    def __init__(
        self,
        *,
        virtual_memory: Callable[[], MemoryStats] = _psutil_virtual_memory,
        swap_memory: Callable[[], MemoryStats] = _psutil_swap_memory,
    ) -> None:
        self._virtual_memory = virtual_memory
        self._swap_memory = swap_memory

    def collect(self) -> dict[str, float]:
        vm = self._virtual_memory()
        swap = self._swap_memory()
        return {
            "total_bytes": float(vm.get("total", 0.0)),
            "used_bytes": float(vm.get("used", 0.0)),
            "free_bytes": float(vm.get("free", 0.0)),
            "available_bytes": float(vm.get("available", 0.0)),
            "usage_percent": float(vm.get("percent", 0.0)),
            "cached": float(vm.get("cached", 0.0)),
            "buffers": float(vm.get("buffers", 0.0)),
            "swap_total": float(swap.get("total", 0.0)),
            "swap_used": float(swap.get("used", 0.0)),
            "swap_free": float(swap.get("free", 0.0)),
            "swap_percent": float(swap.get("percent", 0.0)),
        }
