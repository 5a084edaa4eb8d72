"""The daemon's config schema, shared by the Daemon (daemon.yaml) and the Manager (policies).

One module so that a policy the Manager accepts is one a daemon loads: the sections of
``daemon.yaml`` (:class:`DaemonConfig`, including ``update:``, :class:`UpdateSection`) and
its agent entries (``agents:`` and ``agent_defaults:``, validated into frozen
:class:`AgentSpec`). :func:`merge_agents` deep-merges ``agent_defaults`` into every
entry, validates it, and rejects duplicate ids; every failure is a :class:`ConfigError`
naming the key (``config key 'agents[1].restart.policy': ...``). The sections are frozen
dataclasses checked by :mod:`opsfleet.common.schema`, not pydantic models: a daemon does not
load pydantic. This module does no OS work and imports neither the manager nor the daemon.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from opsfleet.common.config_sources import split_host_port
from opsfleet.common.errors import ConfigError
from opsfleet.common.schema import field_names, parse, rule
from opsfleet.common.signing import check_public_key
from opsfleet.common.validation import NODE_ID_RE

AgentType = Literal["filebeat", "telegraf", "node_exporter", "custom"]
RestartPolicy = Literal["always", "on-failure", "never"]

AGENT_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
_AGENT_ID_RE = re.compile(AGENT_ID_PATTERN)

DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_MAX = 60.0
DEFAULT_RETRY_WINDOW = 300.0
DEFAULT_STABLE_AFTER = 60.0
DEFAULT_HEALTH_INTERVAL = 10.0
DEFAULT_THRESHOLD_DURATION = 60.0
DEFAULT_PROBE_TIMEOUT = 5.0
DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_START_SECONDS = 1.0
DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_METRICS_INTERVAL = 10.0
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 3
NODE_EXPORTER_LISTEN = "127.0.0.1:9100"


def is_valid_agent_id(agent_id: str) -> bool:
    return _AGENT_ID_RE.fullmatch(agent_id) is not None


def _agent_id(value: str) -> str:
    if not is_valid_agent_id(value):
        raise ValueError(f"agent id must match {AGENT_ID_PATTERN}, got {value!r}")
    return value


def _http_url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class RestartSection:
    """When and how fast an exited agent is started again."""

    policy: RestartPolicy = "always"
    max_retries: int = field(default=DEFAULT_MAX_RETRIES, metadata=rule(ge=0))
    backoff_base: float = field(default=DEFAULT_BACKOFF_BASE, metadata=rule(duration=True, gt=0))
    backoff_max: float = field(default=DEFAULT_BACKOFF_MAX, metadata=rule(duration=True, gt=0))
    retry_window: float = field(default=DEFAULT_RETRY_WINDOW, metadata=rule(duration=True, gt=0))
    stable_after: float = field(default=DEFAULT_STABLE_AFTER, metadata=rule(duration=True))


@dataclass(frozen=True, kw_only=True)
class HealthCheckSection:
    """Probes and limits checked while the agent runs; 0 / empty disables a check."""

    interval: float = field(default=DEFAULT_HEALTH_INTERVAL, metadata=rule(duration=True, gt=0))
    heartbeat_timeout: float = field(default=0.0, metadata=rule(duration=True))
    http_url: str = field(default="", metadata=rule(check=_http_url))
    tcp_port: int = field(default=0, metadata=rule(ge=0, le=65535))
    cpu_threshold: float = field(default=0.0, metadata=rule(ge=0))
    memory_threshold: int = field(default=0, metadata=rule(ge=0))
    threshold_duration: float = field(default=DEFAULT_THRESHOLD_DURATION, metadata=rule(duration=True))
    probe_timeout: float = field(default=DEFAULT_PROBE_TIMEOUT, metadata=rule(duration=True, gt=0))
    # opsfleet addition: consecutive failed probes before a restart (one blip is not an outage).
    failure_threshold: int = field(default=DEFAULT_FAILURE_THRESHOLD, metadata=rule(ge=1))

    @property
    def has_probe(self) -> bool:
        return bool(self.http_url or self.tcp_port)


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    """One supervised agent."""

    id: str = field(metadata=rule(check=_agent_id))
    type: AgentType = "custom"
    name: str = ""
    version: str = ""
    binary_path: str = field(metadata=rule(min_length=1))
    args: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    work_dir: str = ""
    config_file: str = ""
    enabled: bool = True
    restart: RestartSection = field(default_factory=RestartSection)
    health_check: HealthCheckSection = field(default_factory=HealthCheckSection)
    start_seconds: float = field(default=DEFAULT_START_SECONDS, metadata=rule(duration=True))
    stop_timeout: float = field(default=DEFAULT_STOP_TIMEOUT, metadata=rule(duration=True))
    metrics_interval: float = field(default=DEFAULT_METRICS_INTERVAL, metadata=rule(duration=True, gt=0))
    log_max_bytes: int = field(default=DEFAULT_LOG_MAX_BYTES, metadata=rule(ge=1))
    log_backups: int = field(default=DEFAULT_LOG_BACKUPS, metadata=rule(ge=1))

    def command(self) -> list[str]:
        """argv: ``args`` when set, otherwise the defaults of the agent type."""
        if self.args is not None:
            return [self.binary_path, *self.args]
        return [self.binary_path, *default_args(self.type, self.config_file)]


AGENT_FIELDS = frozenset(field_names(AgentSpec))


def default_args(agent_type: AgentType, config_file: str) -> list[str]:
    if agent_type == "filebeat":
        return ["-c", config_file] if config_file else []
    if agent_type == "telegraf":
        return ["--config", config_file] if config_file else []
    if agent_type == "node_exporter":
        return [f"--web.listen-address={NODE_EXPORTER_LISTEN}"]
    return []


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over a copy of ``base``: maps merged key by key, anything else replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_agents(
    defaults: Mapping[str, Any] | None, entries: Sequence[Mapping[str, Any]] | None
) -> list[AgentSpec]:
    """Validated specs, in config order, with ``defaults`` deep-merged under every entry."""
    defaults = defaults or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError("config key 'agent_defaults': expected a mapping")
    for key in defaults:
        if key == "id":
            raise ConfigError("config key 'agent_defaults.id': an agent id cannot have a default")
        if key not in AGENT_FIELDS:
            raise ConfigError(f"config key 'agent_defaults.{key}': unknown key")
    if entries is None:
        return []
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigError("config key 'agents': expected a list of agents")
    specs: list[AgentSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        prefix = f"agents[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"config key '{prefix}': expected a mapping")
        spec = parse(AgentSpec, deep_merge(defaults, entry), prefix)
        if spec.id in seen:
            raise ConfigError(
                f"config key '{prefix}.id': duplicate agent id {spec.id!r} (also agents[{seen[spec.id]}])"
            )
        seen[spec.id] = index
        specs.append(spec)
    return specs


# -- daemon.yaml sections -------------------------------------------------------------

DEFAULT_MANAGER_ADDRESS = "127.0.0.1:9090"
DEFAULT_GRPC_PORT = 9091
DEFAULT_WORK_DIR = "data/daemon"
DEFAULT_SPOOL_BYTES = 64 * 1024 * 1024
DEFAULT_RECONNECT_MAX = 15.0  # with 5 s channel reconnects: back within 30 s of the manager
DEFAULT_CONFIG_GRACE = 30.0
DEFAULT_KEEP_VERSIONS = 3
DEFAULT_GRACE_PERIOD = 10.0
DEFAULT_MAX_PACKAGE_BYTES = 512 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = 300.0
DEFAULT_ROLLBACK_TIMEOUT = 60.0
DEFAULT_DAEMON_GRACE_PERIOD = 60.0


def _node_id(value: str) -> str:
    if value and not NODE_ID_RE.fullmatch(value):
        raise ValueError("must be 1-128 characters of [A-Za-z0-9._:-]")
    return value


def _public_keys(value: list[str]) -> list[str]:
    for key in value:
        check_public_key(key)  # InvalidArgument: an error naming update.trusted_keys
    return value


@dataclass(frozen=True, kw_only=True)
class DaemonTLS:
    """TLS of the daemon's own DaemonService (when it has no enrolled identity).

    ``ca_file`` is required with TLS: only clients with a certificate from that CA are
    served, and only with the Manager identity unless ``require_manager_identity`` is false.
    """

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    require_manager_identity: bool = True


@dataclass(frozen=True, kw_only=True)
class DaemonSection:
    id: str = field(default="", metadata=rule(check=_node_id))
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    work_dir: str = DEFAULT_WORK_DIR
    grpc_host: str = "0.0.0.0"
    grpc_port: int = field(default=DEFAULT_GRPC_PORT, metadata=rule(ge=0, le=65535))
    advertise_address: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    state_sync_interval: float = field(default=30.0, metadata=rule(duration=True, gt=0))
    agent_heartbeat_port: int = field(default=0, metadata=rule(ge=0, le=65535))
    # How long the agents of a new central config get to reach running before it is rolled back.
    config_grace: float = field(default=DEFAULT_CONFIG_GRACE, metadata=rule(duration=True, gt=0))
    tls: DaemonTLS = field(default_factory=DaemonTLS)


@dataclass(frozen=True, kw_only=True)
class ManagerTLS:
    enabled: bool = False
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    server_name: str = ""


def manager_addresses(value: str | Sequence[str], *, key: str) -> list[str]:
    """``HOST:PORT``, ``HOST:PORT,HOST:PORT`` or a list of them, each checked; ConfigError naming ``key``."""
    items = value.split(",") if isinstance(value, str) else list(value)
    addresses = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if not addresses or len(addresses) != len(items):
        raise ConfigError(f"config key '{key}': expected HOST:PORT or a list of HOST:PORT, got {value!r}")
    for i, address in enumerate(addresses):
        split_host_port(address, key=key if isinstance(value, str) else f"{key}[{i}]")
    return addresses


def _address(value: str | list[str]) -> str | list[str]:
    manager_addresses(value, key="manager.address")  # ConfigError naming the key
    return value


@dataclass(frozen=True, kw_only=True)
class ManagerSection:
    """``address``: one Manager, or several replicas (a list) the daemon fails over between."""

    address: str | list[str] = field(default=DEFAULT_MANAGER_ADDRESS, metadata=rule(check=_address))
    tls: ManagerTLS = field(default_factory=ManagerTLS)
    heartbeat_interval: float = field(default=30.0, metadata=rule(duration=True, ge=1.0))
    reconnect_interval: float = field(default=5.0, metadata=rule(duration=True, gt=0))
    reconnect_max: float = field(default=DEFAULT_RECONNECT_MAX, metadata=rule(duration=True, gt=0))
    timeout: float = field(default=10.0, metadata=rule(duration=True, gt=0))

    @property
    def addresses(self) -> list[str]:
        """Every configured Manager address, in configured order."""
        return manager_addresses(self.address, key="manager.address")

    @property
    def tls_enabled(self) -> bool:
        return self.tls.enabled or bool(self.tls.ca_file or self.tls.cert_file)


@dataclass(frozen=True, kw_only=True)
class CollectorSection:
    enabled: bool = True
    interval: float = field(default=60.0, metadata=rule(duration=True, ge=1.0))


@dataclass(frozen=True, kw_only=True)
class DiskCollectorSection(CollectorSection):
    mount_points: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class NetworkCollectorSection(CollectorSection):
    interfaces: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class CollectorsSection:
    cpu: CollectorSection = field(default_factory=CollectorSection)
    memory: CollectorSection = field(default_factory=CollectorSection)
    disk: DiskCollectorSection = field(default_factory=DiskCollectorSection)
    network: NetworkCollectorSection = field(default_factory=NetworkCollectorSection)


@dataclass(frozen=True, kw_only=True)
class SpoolSection:
    max_bytes: int = field(default=DEFAULT_SPOOL_BYTES, metadata=rule(ge=64 * 1024))
    batch_size: int = field(default=500, metadata=rule(ge=1, le=1000))


@dataclass(frozen=True, kw_only=True)
class UpdateSection:
    """How this daemon accepts updates. No ``trusted_keys``: every update is refused."""

    enabled: bool = True
    trusted_keys: list[str] = field(default_factory=list, metadata=rule(check=_public_keys))
    keep_versions: int = field(default=DEFAULT_KEEP_VERSIONS, metadata=rule(ge=2))
    grace_period: float = field(default=DEFAULT_GRACE_PERIOD, metadata=rule(duration=True, gt=0))
    self_update: bool = True
    daemon_grace_period: float = field(
        default=DEFAULT_DAEMON_GRACE_PERIOD, metadata=rule(duration=True, gt=0)
    )
    rollback_timeout: float = field(default=DEFAULT_ROLLBACK_TIMEOUT, metadata=rule(duration=True, gt=0))
    max_package_bytes: int = field(default=DEFAULT_MAX_PACKAGE_BYTES, metadata=rule(ge=1024))
    download_timeout: float = field(default=DEFAULT_DOWNLOAD_TIMEOUT, metadata=rule(duration=True, gt=0))


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    daemon: DaemonSection = field(default_factory=DaemonSection)
    manager: ManagerSection = field(default_factory=ManagerSection)
    collectors: CollectorsSection = field(default_factory=CollectorsSection)
    spool: SpoolSection = field(default_factory=SpoolSection)
    agents: list[dict[str, Any]] = field(default_factory=list)
    agent_defaults: dict[str, Any] = field(default_factory=dict)
    update: UpdateSection = field(default_factory=UpdateSection)

    @property
    def work_dir(self) -> Path:
        return Path(self.daemon.work_dir)

    def agent_specs(self) -> list[AgentSpec]:
        """The ``agents`` entries with ``agent_defaults`` merged in, validated (ConfigError names the key)."""
        return merge_agents(self.agent_defaults, self.agents)
