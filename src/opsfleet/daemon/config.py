"""The Daemon's one frozen config (file < OPSFLEET_* environment < CLI flags).

The file has the shape of the seed's ``daemon.yaml``; see ``configs/daemon.yaml`` and
``docs/configuration.md``. Agent entries are validated by the supervisor's models
(``opsfleet.daemon.supervisor.config``) when the app is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from opsfleet.common.config import Duration, Section, load_config, split_host_port
from opsfleet.common.errors import ConfigError
from opsfleet.daemon.supervisor.config import AgentSpec, merge_agents
from opsfleet.daemon.updates.config import UpdateSection

DEFAULT_MANAGER_ADDRESS = "127.0.0.1:9090"
DEFAULT_GRPC_PORT = 9091
DEFAULT_WORK_DIR = "data/daemon"
DEFAULT_SPOOL_BYTES = 64 * 1024 * 1024
DEFAULT_RECONNECT_MAX = 15.0  # with 5 s channel reconnects: back within 30 s of the manager

SEED_IGNORED_KEYS = (
    "daemon.pid_file",
    "daemon.log_file",
    "log",
    "manager.tls.insecure_skip_verify",
    "manager.max_retries",
    "plugins",
)


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
    tls: DaemonTLS = DaemonTLS()

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        from opsfleet.common.validation import NODE_ID_RE

        if value and not NODE_ID_RE.fullmatch(value):
            raise ValueError("must be 1-128 characters of [A-Za-z0-9._:-]")
        return value


class ManagerTLS(Section):
    enabled: bool = False
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    server_name: str = ""


class ManagerSection(Section):
    address: str = DEFAULT_MANAGER_ADDRESS
    tls: ManagerTLS = ManagerTLS()
    heartbeat_interval: Duration = Field(default=30.0, ge=1.0)
    reconnect_interval: Duration = Field(default=5.0, gt=0)
    reconnect_max: Duration = Field(default=DEFAULT_RECONNECT_MAX, gt=0)
    timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_host_port(value, key="manager.address")
        return value

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


def load_daemon_config(
    path: Path | None, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> DaemonConfig:
    config = load_config(
        DaemonConfig, path=path, env=env, overrides=overrides or {}, ignored=SEED_IGNORED_KEYS
    )
    tls = config.manager.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError("config key 'manager.tls.cert_file': cert_file and key_file must be set together")
    own = config.daemon.tls
    if (own.cert_file or own.key_file or own.ca_file) and not (own.cert_file and own.key_file):
        raise ConfigError(
            "config key 'daemon.tls.cert_file': cert_file and key_file are both required for TLS"
        )
    if own.cert_file and not own.ca_file:
        raise ConfigError(
            "config key 'daemon.tls.ca_file': required with daemon.tls.cert_file (TLS without a CA "
            "would serve any client): set the CA that issued the Manager's client certificate"
        )
    config.agent_specs()
    return config
