"""The Daemon's one frozen config (file < OPSFLEET_* environment < CLI flags).

The file has the shape of the seed's ``daemon.yaml``; see ``configs/daemon.yaml`` and
``docs/configuration.md``. The schema itself lives in :mod:`opsfleet.common.daemon_schema`,
shared with the Manager, which validates central policies with it. It is made of frozen
dataclasses checked by :mod:`opsfleet.common.schema`: the daemon does not load pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsfleet.common.config_sources import merge_sources
from opsfleet.common.daemon_schema import (
    DEFAULT_GRPC_PORT,
    DEFAULT_MANAGER_ADDRESS,
    DEFAULT_RECONNECT_MAX,
    DEFAULT_SPOOL_BYTES,
    DEFAULT_WORK_DIR,
    CollectorSection,
    CollectorsSection,
    DaemonConfig,
    DaemonSection,
    DaemonTLS,
    DiskCollectorSection,
    ManagerSection,
    ManagerTLS,
    NetworkCollectorSection,
    SpoolSection,
    UpdateSection,
)
from opsfleet.common.errors import ConfigError
from opsfleet.common.schema import leaf_paths, parse

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_MANAGER_ADDRESS",
    "DEFAULT_RECONNECT_MAX",
    "DEFAULT_SPOOL_BYTES",
    "DEFAULT_WORK_DIR",
    "SEED_IGNORED_KEYS",
    "CollectorSection",
    "CollectorsSection",
    "DaemonConfig",
    "DaemonSection",
    "DaemonTLS",
    "DiskCollectorSection",
    "ManagerSection",
    "ManagerTLS",
    "NetworkCollectorSection",
    "SpoolSection",
    "UpdateSection",
    "load_daemon_config",
]

SEED_IGNORED_KEYS = (
    "daemon.pid_file",
    "daemon.log_file",
    "log",
    "manager.tls.insecure_skip_verify",
    "manager.max_retries",
    "plugins",
)


def load_daemon_config(
    path: Path | None, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> DaemonConfig:
    data = merge_sources(
        leaf_paths(DaemonConfig), path=path, env=env, overrides=overrides or {}, ignored=SEED_IGNORED_KEYS
    )
    config = parse(DaemonConfig, data)
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
