"""Network collector: traffic of the selected interfaces together, with deltas between samples."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import psutil

logger = logging.getLogger(__name__)

NicCounters = Mapping[str, float]
"""psutil ``snetio`` field name (bytes_sent, bytes_recv, packets_sent, packets_recv, errin,
errout, dropin, dropout) -> cumulative value."""

LOOPBACK = "lo"

_CUMULATIVE_KEYS = {
    "bytes_recv": "bytes_recv",
    "bytes_sent": "bytes_sent",
    "packets_recv": "packets_recv",
    "packets_sent": "packets_sent",
    "error_in": "errin",
    "error_out": "errout",
    "drop_in": "dropin",
    "drop_out": "dropout",
}


def _psutil_counters() -> Mapping[str, NicCounters]:
    return {nic: counters._asdict() for nic, counters in psutil.net_io_counters(pernic=True).items()}


def _delta(now: NicCounters, before: NicCounters | None, field: str) -> float:
    if before is None:
        return 0.0
    # A counter that went backwards was reset (interface re-created, driver reload): count 0.
    return max(0.0, float(now.get(field, 0.0)) - float(before.get(field, 0.0)))


class NetworkCollector:
    """Keys: rx_bytes, tx_bytes, bytes_recv, bytes_sent, packets_recv, packets_sent, error_in,
    error_out, drop_in, drop_out, interface_count, interval_seconds.

    Selection: empty ``interfaces`` means every interface except the loopback ``lo``; otherwise
    the listed ones (a listed interface that does not exist is skipped, with a warning logged
    once until it appears). ``rx_bytes``/``tx_bytes`` are bytes received/sent since the previous
    ``collect()``, summed per interface and never negative: the first call, an interface seen
    for the first time and a counter reset all contribute 0. ``interval_seconds`` is the time
    since the previous call (0.0 on the first). The other counters are cumulative sums.
    ``counters`` (psutil's per-NIC counters) and ``clock`` (monotonic seconds) are injectable.
    """

    name = "network"

    def __init__(
        self,
        *,
        interfaces: Sequence[str] = (),
        counters: Callable[[], Mapping[str, NicCounters]] = _psutil_counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interfaces = tuple(dict.fromkeys(interfaces))
        self._counters = counters
        self._clock = clock
        self._previous: dict[str, NicCounters] = {}
        self._previous_time: float | None = None
        self._warned: set[str] = set()

    def _select(self, all_counters: Mapping[str, NicCounters]) -> dict[str, NicCounters]:
        if not self._interfaces:
            return {nic: c for nic, c in all_counters.items() if nic != LOOPBACK}
        selected: dict[str, NicCounters] = {}
        for nic in self._interfaces:
            if nic in all_counters:
                selected[nic] = all_counters[nic]
                self._warned.discard(nic)
            elif nic not in self._warned:
                self._warned.add(nic)
                logger.warning("network collector: interface %s not found, skipping it", nic)
        return selected

    def collect(self) -> dict[str, float]:
        now = self._clock()
        selected = self._select(self._counters())
        values = {key: 0.0 for key in _CUMULATIVE_KEYS}
        rx = tx = 0.0
        for nic, counters in selected.items():
            before = self._previous.get(nic)
            rx += _delta(counters, before, "bytes_recv")
            tx += _delta(counters, before, "bytes_sent")
            for key, field in _CUMULATIVE_KEYS.items():
                values[key] += float(counters.get(field, 0.0))
        interval = 0.0 if self._previous_time is None else max(0.0, now - self._previous_time)
        self._previous = {nic: dict(c) for nic, c in selected.items()}
        self._previous_time = now
        return {
            "rx_bytes": rx,
            "tx_bytes": tx,
            **values,
            "interface_count": float(len(selected)),
            "interval_seconds": interval,
        }
