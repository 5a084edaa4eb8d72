"""The daemon's config schema, shared by the Daemon (daemon.yaml) and the Manager (policies).

One module so that a policy the Manager accepts is one a daemon loads: the sections of
``daemon.yaml`` (:class:`DaemonConfig`, including ``update:``, :class:`UpdateSection`) and
its agent entries (``agents:`` and ``agent_defaults:``, validated into frozen
:class:`AgentSpec`). :func:`merge_agents` deep-merges ``agent_defaults`` into every
entry, validates it, and rejects duplicate ids; every failure is a :class:`ConfigError`
naming the key (``config key 'agents[1].restart.policy': ...``). This module does no OS
work and imports neither the manager nor the daemon.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from opsfleet.common.config import Duration, Section, describe_validation_error, split_host_port
from opsfleet.common.errors import ConfigError
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


class RestartSection(Section):
    """When and how fast an exited agent is started again."""

    policy: RestartPolicy = "always"
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0)
    backoff_base: Duration = Field(default=DEFAULT_BACKOFF_BASE, gt=0)
    backoff_max: Duration = Field(default=DEFAULT_BACKOFF_MAX, gt=0)
    retry_window: Duration = Field(default=DEFAULT_RETRY_WINDOW, gt=0)
    stable_after: Duration = DEFAULT_STABLE_AFTER


class HealthCheckSection(Section):
    """Probes and limits checked while the agent runs; 0 / empty disables a check."""

    interval: Duration = Field(default=DEFAULT_HEALTH_INTERVAL, gt=0)
    heartbeat_timeout: Duration = 0.0
    http_url: str = ""
    tcp_port: int = Field(default=0, ge=0, le=65535)
    cpu_threshold: float = Field(default=0.0, ge=0)
    memory_threshold: int = Field(default=0, ge=0)
    threshold_duration: Duration = DEFAULT_THRESHOLD_DURATION
    probe_timeout: Duration = Field(default=DEFAULT_PROBE_TIMEOUT, gt=0)
    # opsfleet addition: consecutive failed probes before a restart (one blip is not an outage).
    failure_threshold: int = Field(default=DEFAULT_FAILURE_THRESHOLD, ge=1)

    @field_validator("http_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @property
    def has_probe(self) -> bool:
        return bool(self.http_url or self.tcp_port)


class AgentSpec(Section):
    """One supervised agent."""

    id: str
    type: AgentType = "custom"
    name: str = ""
    version: str = ""
    binary_path: str = Field(min_length=1)
    args: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    work_dir: str = ""
    config_file: str = ""
    enabled: bool = True
    restart: RestartSection = RestartSection()
    health_check: HealthCheckSection = HealthCheckSection()
    start_seconds: Duration = DEFAULT_START_SECONDS
    stop_timeout: Duration = DEFAULT_STOP_TIMEOUT
    metrics_interval: Duration = Field(default=DEFAULT_METRICS_INTERVAL, gt=0)
    log_max_bytes: int = Field(default=DEFAULT_LOG_MAX_BYTES, ge=1)
    log_backups: int = Field(default=DEFAULT_LOG_BACKUPS, ge=1)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not is_valid_agent_id(value):
            raise ValueError(f"agent id must match {AGENT_ID_PATTERN}, got {value!r}")
        return value

    def command(self) -> list[str]:
        """argv: ``args`` when set, otherwise the defaults of the agent type."""
        if self.args is not None:
            return [self.binary_path, *self.args]
        return [self.binary_path, *default_args(self.type, self.config_file)]


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
        if key not in AgentSpec.model_fields:
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
        try:
            spec = AgentSpec.model_validate(deep_merge(defaults, entry))
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, prefix)) from exc
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


class DaemonTLS(Section):
    """TLS of the daemon's own DaemonService (when it has no enrolled identity).

    ``ca_file`` is required with TLS: only clients with a certificate from that CA are
    served, and only with the Manager identity unless ``require_manager_identity`` is false.
    """

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    require_manager_identity: bool = True


class DaemonSection(Section):
    id: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    work_dir: str = DEFAULT_WORK_DIR
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(default=DEFAULT_GRPC_PORT, ge=0, le=65535)
    advertise_address: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    state_sync_interval: Duration = Field(default=30.0, gt=0)
    agent_heartbeat_port: int = Field(default=0, ge=0, le=65535)
    # How long the agents of a new central config get to reach running before it is rolled back.
    config_grace: Duration = Field(default=DEFAULT_CONFIG_GRACE, gt=0)
    tls: DaemonTLS = DaemonTLS()

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value and not NODE_ID_RE.fullmatch(value):
            raise ValueError("must be 1-128 characters of [A-Za-z0-9._:-]")
        return value


class ManagerTLS(Section):
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


class ManagerSection(Section):
    """``address``: one Manager, or several replicas (a list) the daemon fails over between."""

    address: str | list[str] = DEFAULT_MANAGER_ADDRESS
    tls: ManagerTLS = ManagerTLS()
    heartbeat_interval: Duration = Field(default=30.0, ge=1.0)
    reconnect_interval: Duration = Field(default=5.0, gt=0)
    reconnect_max: Duration = Field(default=DEFAULT_RECONNECT_MAX, gt=0)
    timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value: Any) -> Any:
        if not isinstance(value, str | list | tuple):
            raise ConfigError(f"config key 'manager.address': expected HOST:PORT or a list, got {value!r}")
        manager_addresses(value, key="manager.address")
        return list(value) if isinstance(value, tuple) else value

    @property
    def addresses(self) -> list[str]:
        """Every configured Manager address, in configured order."""
        return manager_addresses(self.address, key="manager.address")

    @property
    def tls_enabled(self) -> bool:
        return self.tls.enabled or bool(self.tls.ca_file or self.tls.cert_file)


class CollectorSection(Section):
    enabled: bool = True
    interval: Duration = Field(default=60.0, ge=1.0)


class DiskCollectorSection(CollectorSection):
    mount_points: list[str] = Field(default_factory=list)


class NetworkCollectorSection(CollectorSection):
    interfaces: list[str] = Field(default_factory=list)


class CollectorsSection(Section):
    cpu: CollectorSection = CollectorSection()
    memory: CollectorSection = CollectorSection()
    disk: DiskCollectorSection = DiskCollectorSection()
    network: NetworkCollectorSection = NetworkCollectorSection()


class SpoolSection(Section):
    max_bytes: int = Field(default=DEFAULT_SPOOL_BYTES, ge=64 * 1024)
    batch_size: int = Field(default=500, ge=1, le=1000)


class UpdateSection(Section):
    """How this daemon accepts updates. No ``trusted_keys``: every update is refused."""

    enabled: bool = True
    trusted_keys: list[str] = Field(default_factory=list)
    keep_versions: int = Field(default=DEFAULT_KEEP_VERSIONS, ge=2)
    grace_period: Duration = Field(default=DEFAULT_GRACE_PERIOD, gt=0)
    self_update: bool = True
    daemon_grace_period: Duration = Field(default=DEFAULT_DAEMON_GRACE_PERIOD, gt=0)
    rollback_timeout: Duration = Field(default=DEFAULT_ROLLBACK_TIMEOUT, gt=0)
    max_package_bytes: int = Field(default=DEFAULT_MAX_PACKAGE_BYTES, ge=1024)
    download_timeout: Duration = Field(default=DEFAULT_DOWNLOAD_TIMEOUT, gt=0)

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            check_public_key(key)  # InvalidArgument -> a validation error naming the key
        return value


class DaemonConfig(Section):
    daemon: DaemonSection = DaemonSection()
    manager: ManagerSection = ManagerSection()
    collectors: CollectorsSection = CollectorsSection()
    spool: SpoolSection = SpoolSection()
    agents: list[dict[str, Any]] = Field(default_factory=list)
    agent_defaults: dict[str, Any] = Field(default_factory=dict)
    update: UpdateSection = UpdateSection()

    @property
    def work_dir(self) -> Path:
        return Path(self.daemon.work_dir)

    def agent_specs(self) -> list[AgentSpec]:
        """The ``agents`` entries with ``agent_defaults`` merged in, validated (ConfigError names the key)."""
        return merge_agents(self.agent_defaults, self.agents)
