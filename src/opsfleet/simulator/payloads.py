"""What a simulated node says: its identity, plausible metric readings and agent states.

Pure and deterministic for a given ``random.Random``: no I/O, no gRPC. The metric keys are
exactly those of the wire contract (PROTOCOL.md section 3); cumulative counters only grow
and deltas are computed against the previous sample, as the seed's collectors do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opsfleet import __version__

GIB = 1024**3
TIB = 1024**4

AGENT_TYPES = ("filebeat", "telegraf", "node_exporter", "custom")
AGENT_VERSION = "1.0.0"
_OSES = (("linux", "amd64", 0.8), ("linux", "arm64", 0.2))
_CORES = (2, 4, 8, 16, 32, 64)
_MEMORY_GIB = (4, 8, 16, 32, 64, 128, 256)
_ROLES = ("web", "db", "cache", "batch", "edge")
_ZONES = ("a", "b", "c")
_AVG_PACKET_BYTES = 900.0

Metrics = dict[str, dict[str, float]]


@dataclass(frozen=True)
class NodeIdentity:
    """What a node registers with. ``index`` is the simulator's own numbering."""

    index: int
    node_id: str
    hostname: str
    ip: str
    os: str
    arch: str
    labels: dict[str, str]
    daemon_version: str
    agent_version: str


@dataclass(frozen=True)
class AgentReport:
    agent_id: str
    type: str
    version: str
    status: str
    pid: int
    last_heartbeat: int


def identity_for(node_id: str, index: int, rand: random.Random) -> NodeIdentity:
    os_name, arch, _ = rand.choices(_OSES, weights=[w for *_, w in _OSES])[0]
    return NodeIdentity(
        index=index,
        node_id=node_id,
        hostname=f"{node_id}.sim.example",
        ip=f"10.{(index >> 16) & 0xFF}.{(index >> 8) & 0xFF}.{index & 0xFF}",
        os=os_name,
        arch=arch,
        labels={"role": rand.choice(_ROLES), "zone": rand.choice(_ZONES), "simulated": "true"},
        daemon_version=__version__,
        agent_version=AGENT_VERSION,
    )


def _walk(value: float, step: float, low: float, high: float, rand: random.Random) -> float:
    return min(high, max(low, value + rand.gauss(0.0, step)))


class MachineModel:
    """The evolving state of one simulated machine; :meth:`sample` advances it to ``now``.

    Not thread-safe; one owner (the simulated node) calls it with non-decreasing ``now``.
    """

    def __init__(self, rand: random.Random, now: float) -> None:
        self._rand = rand
        self._last = now
        self.cores = float(rand.choice(_CORES))
        self.mhz = float(rand.choice((2100, 2400, 2600, 3000, 3400)))
        self.cpu_usage = rand.uniform(5.0, 60.0)
        self.cpu_user = rand.uniform(1e4, 1e7)
        self.cpu_system = self.cpu_user * 0.3
        self.cpu_idle = self.cpu_user * 3.0
        self.cpu_iowait = self.cpu_user * 0.02
        self.mem_total = float(rand.choice(_MEMORY_GIB) * GIB)
        self.mem_usage = rand.uniform(20.0, 80.0)
        self.swap_total = float(rand.choice((0, 2, 4, 8)) * GIB)
        self.swap_usage = rand.uniform(0.0, 10.0) if self.swap_total else 0.0
        self.disk_total = float(rand.choice((0.1, 0.25, 0.5, 1.0, 2.0, 4.0)) * TIB)
        self.disk_usage = rand.uniform(10.0, 85.0)
        self.disk_read = rand.uniform(1e9, 1e12)
        self.disk_write = rand.uniform(1e9, 1e12)
        self.partitions = float(rand.randint(1, 4))
        self.interfaces = float(rand.randint(1, 4))
        self.net_rate = rand.uniform(1e4, 5e7)
        self.bytes_recv = rand.uniform(1e9, 1e13)
        self.bytes_sent = self.bytes_recv * rand.uniform(0.1, 1.5)
        self.errors_in = 0.0
        self.errors_out = 0.0
        self.drops_in = 0.0
        self.drops_out = 0.0

    def sample(self, now: float) -> Metrics:
        """One reading of all four metric types, every contract key present, all finite."""
        dt = max(0.0, now - self._last)
        self._last = now
        r = self._rand
        return {
            "cpu": self._cpu(dt, r),
            "memory": self._memory(r),
            "disk": self._disk(dt, r),
            "network": self._network(dt, r),
        }

    def _cpu(self, dt: float, r: random.Random) -> dict[str, float]:
        self.cpu_usage = _walk(self.cpu_usage, 4.0, 0.5, 99.5, r)
        busy = self.cpu_usage / 100.0
        core_seconds = dt * self.cores
        self.cpu_user += core_seconds * busy * 0.7
        self.cpu_system += core_seconds * busy * 0.25
        self.cpu_iowait += core_seconds * busy * 0.05
        self.cpu_idle += core_seconds * (1.0 - busy)
        return {
            "usage_percent": round(self.cpu_usage, 2),
            "cores": self.cores,
            "mhz": self.mhz,
            "user": round(self.cpu_user, 2),
            "system": round(self.cpu_system, 2),
            "idle": round(self.cpu_idle, 2),
            "iowait": round(self.cpu_iowait, 2),
        }

    def _memory(self, r: random.Random) -> dict[str, float]:
        self.mem_usage = _walk(self.mem_usage, 1.5, 5.0, 98.0, r)
        used = self.mem_total * self.mem_usage / 100.0
        available = self.mem_total - used
        cached = available * 0.4
        buffers = available * 0.05
        if self.swap_total:
            self.swap_usage = _walk(self.swap_usage, 0.5, 0.0, 100.0, r)
        swap_used = self.swap_total * self.swap_usage / 100.0
        return {
            "total_bytes": self.mem_total,
            "used_bytes": round(used),
            "free_bytes": round(available - cached - buffers),
            "available_bytes": round(available),
            "usage_percent": round(self.mem_usage, 2),
            "cached": round(cached),
            "buffers": round(buffers),
            "swap_total": self.swap_total,
            "swap_used": round(swap_used),
            "swap_free": round(self.swap_total - swap_used),
            "swap_percent": round(self.swap_usage, 2),
        }

    def _disk(self, dt: float, r: random.Random) -> dict[str, float]:
        self.disk_usage = _walk(self.disk_usage, 0.05, 1.0, 99.0, r)
        used = self.disk_total * self.disk_usage / 100.0
        self.disk_read += dt * r.uniform(0.0, 2e7)
        self.disk_write += dt * r.uniform(0.0, 1e7)
        return {
            "total_bytes": self.disk_total,
            "used_bytes": round(used),
            "free_bytes": round(self.disk_total - used),
            "usage_percent": round(self.disk_usage, 2),
            "read_bytes": round(self.disk_read),
            "write_bytes": round(self.disk_write),
            "partition_count": self.partitions,
        }

    def _network(self, dt: float, r: random.Random) -> dict[str, float]:
        rx = round(dt * self.net_rate * r.uniform(0.5, 1.5))
        tx = round(dt * self.net_rate * r.uniform(0.2, 1.2))
        self.bytes_recv += rx
        self.bytes_sent += tx
        if r.random() < 0.01:
            self.errors_in += 1
        if r.random() < 0.005:
            self.errors_out += 1
        if r.random() < 0.02:
            self.drops_in += r.randint(1, 20)
        if r.random() < 0.01:
            self.drops_out += 1
        return {
            "rx_bytes": float(rx),
            "tx_bytes": float(tx),
            "bytes_recv": round(self.bytes_recv),
            "bytes_sent": round(self.bytes_sent),
            "packets_recv": round(self.bytes_recv / _AVG_PACKET_BYTES),
            "packets_sent": round(self.bytes_sent / _AVG_PACKET_BYTES),
            "error_in": self.errors_in,
            "error_out": self.errors_out,
            "drop_in": self.drops_in,
            "drop_out": self.drops_out,
            "interface_count": self.interfaces,
            "interval_seconds": round(dt, 3),
        }


class AgentSet:
    """The agents one simulated node supervises; now and then one restarts (new pid)."""

    RESTART_PROBABILITY = 0.02

    def __init__(self, count: int, rand: random.Random) -> None:
        self._rand = rand
        self._agents = [
            (f"{AGENT_TYPES[i % len(AGENT_TYPES)]}-{i}", AGENT_TYPES[i % len(AGENT_TYPES)])
            for i in range(count)
        ]
        self._pids = [rand.randint(1000, 4_000_000) for _ in range(count)]

    def states(self, now: int) -> list[AgentReport]:
        reports: list[AgentReport] = []
        for i, (agent_id, type_) in enumerate(self._agents):
            status = "running"
            if self._rand.random() < self.RESTART_PROBABILITY:
                self._pids[i] = self._rand.randint(1000, 4_000_000)
                status = "starting"
            reports.append(
                AgentReport(
                    agent_id=agent_id,
                    type=type_,
                    version=AGENT_VERSION,
                    status=status,
                    pid=self._pids[i],
                    last_heartbeat=now,
                )
            )
        return reports
