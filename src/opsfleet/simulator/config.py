"""The simulator's one frozen config, validated on construction (no OS work here)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from opsfleet.common.config_sources import split_host_port
from opsfleet.common.errors import ConfigError

DEFAULT_TARGET = "127.0.0.1:9090"
DEFAULT_NODES = 1000
DEFAULT_HEARTBEAT_INTERVAL = 10.0
DEFAULT_METRICS_INTERVAL = 60.0
DEFAULT_SYNC_INTERVAL = 300.0
DEFAULT_DURATION = 60.0
DEFAULT_STAGGER = 10.0
DEFAULT_CHANNELS = 4
DEFAULT_INFLIGHT = 64
DEFAULT_JITTER = 0.1
DEFAULT_TIMEOUT = 10.0
DEFAULT_ENROLL_CONCURRENCY = 16
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_CAP = 30.0
DEFAULT_AGENTS_PER_NODE = 3
DEFAULT_PROGRESS_INTERVAL = 5.0
DEFAULT_NODE_PREFIX = "sim-"
MAX_WORKERS = 64
MAX_NODES = 1_000_000

# The node id is prefix + a six-digit index; the Manager accepts [A-Za-z0-9._:-]{1,128}.
_PREFIX_RE = re.compile(r"[A-Za-z0-9._:-]{0,100}")


class Mode(enum.StrEnum):
    FLEET = "fleet"
    """Every node keeps its own schedule (heartbeat, metrics, sync) like a real daemon."""
    SATURATE = "saturate"
    """Back-to-back calls in fleet proportions with bounded in-flight calls: maximum throughput."""


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class EnrollSettings:
    """Enroll every simulated node at the Manager's enrollment port before it registers.

    ``concurrency``: enrollments one worker has in flight at most; the others wait their
    turn, as when an operator enrolls a fleet with bounded parallelism (a configuration
    management run with N forks) rather than every node at the same second."""

    address: str
    token: str
    ca_fingerprint: str
    concurrency: int = DEFAULT_ENROLL_CONCURRENCY


@dataclass(frozen=True)
class SimConfig:
    """Everything one simulation run needs; ``ConfigError`` names the offending flag.

    Intervals and durations are seconds. ``metrics_interval`` or ``sync_interval`` of 0
    turns that call off. ``inflight`` is the total bound on concurrent calls in saturate mode.
    """

    target: str = DEFAULT_TARGET
    nodes: int = DEFAULT_NODES
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    metrics_interval: float = DEFAULT_METRICS_INTERVAL
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    duration: float = DEFAULT_DURATION
    workers: int = 2
    channels: int = DEFAULT_CHANNELS
    stagger: float = DEFAULT_STAGGER
    mode: Mode = Mode.FLEET
    inflight: int = DEFAULT_INFLIGHT
    jitter: float = DEFAULT_JITTER
    timeout: float = DEFAULT_TIMEOUT
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    agents_per_node: int = DEFAULT_AGENTS_PER_NODE
    node_prefix: str = DEFAULT_NODE_PREFIX
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    manager_pid: int | None = None
    tls: TlsFiles | None = None
    enroll: EnrollSettings | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for target in self.target.split(","):
            split_host_port(target.strip(), key="--target")
        _at_least("--nodes", self.nodes, 1)
        _at_most("--nodes", self.nodes, MAX_NODES)
        _positive("--heartbeat-interval", self.heartbeat_interval)
        _not_negative("--metrics-interval", self.metrics_interval)
        _not_negative("--sync-interval", self.sync_interval)
        _positive("--duration", self.duration)
        _at_least("--workers", self.workers, 1)
        _at_most("--workers", self.workers, MAX_WORKERS)
        _at_least("--channels", self.channels, 1)
        _not_negative("--stagger", self.stagger)
        _at_least("--inflight", self.inflight, 1)
        if not 0.0 <= self.jitter < 1.0:
            raise ConfigError(f"--jitter: must be in [0, 1), got {self.jitter}")
        _positive("--timeout", self.timeout)
        _positive("--backoff-base", self.backoff_base)
        if self.backoff_cap < self.backoff_base:
            raise ConfigError(
                f"--backoff-cap: must be >= --backoff-base ({self.backoff_base}), got {self.backoff_cap}"
            )
        _not_negative("--agents-per-node", self.agents_per_node)
        _positive("--progress-interval", self.progress_interval)
        if not _PREFIX_RE.fullmatch(self.node_prefix):
            raise ConfigError(
                f"--node-prefix: must be up to 100 characters of [A-Za-z0-9._:-], got {self.node_prefix!r}"
            )
        if self.manager_pid is not None:
            _at_least("--manager-pid", self.manager_pid, 1)
        if self.tls is not None and bool(self.tls.cert_file) != bool(self.tls.key_file):
            raise ConfigError("--tls-cert and --tls-key must be given together")
        if self.enroll is not None:
            split_host_port(self.enroll.address, key="--enroll")
            _positive("--enroll-concurrency", self.enroll.concurrency)
            if not self.enroll.token or not self.enroll.ca_fingerprint:
                raise ConfigError("--enroll needs --token and --ca-fingerprint")
            if self.tls is not None:
                raise ConfigError("--enroll and --tls-* are exclusive")

    @property
    def effective_workers(self) -> int:
        """No more workers than nodes."""
        return min(self.workers, self.nodes)

    def node_id(self, index: int) -> str:
        return f"{self.node_prefix}{index:06d}"

    def call_weights(self) -> tuple[float, float, float]:
        """Relative frequency of heartbeat, metrics and sync calls in a fleet (1/interval each).

        Saturate mode sends calls in these proportions: 10 s / 60 s / 300 s gives 6 : 1 : 0.2.
        """
        return (
            1.0 / self.heartbeat_interval,
            1.0 / self.metrics_interval if self.metrics_interval else 0.0,
            1.0 / self.sync_interval if self.sync_interval else 0.0,
        )


def shard(nodes: int, workers: int, worker_id: int) -> range:
    """The node indices that worker ``worker_id`` of ``workers`` simulates (round-robin)."""
    return range(worker_id, nodes, workers)


def split_evenly(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split into ``parts`` integers that differ by at most one."""
    return total // parts + (1 if index < total % parts else 0)


def _positive(flag: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{flag}: must be > 0, got {value}")


def _not_negative(flag: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{flag}: must be >= 0, got {value}")


def _at_least(flag: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{flag}: must be >= {low}, got {value}")


def _at_most(flag: str, value: int, high: int) -> None:
    if value > high:
        raise ConfigError(f"{flag}: must be <= {high}, got {value}")
