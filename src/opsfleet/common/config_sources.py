"""Config sources without a schema library: the YAML file, ``OPSFLEET_*`` variables, CLI flags.

Shared by the Manager's pydantic loader (:mod:`opsfleet.common.config`) and the daemon's
dataclass loader (:mod:`opsfleet.common.schema`), so both read the same files and the same
environment names. Environment variables are named after the key path: ``grpc.tls.enabled``
is ``OPSFLEET_GRPC__TLS__ENABLED``; their values are parsed as YAML. This module imports
no schema library (the daemon must not load pydantic).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from opsfleet.common.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "OPSFLEET_"


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file; ConfigError when missing, unreadable or not a mapping."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def drop_ignored(data: dict[str, Any], ignored: Iterable[str], source: str) -> None:
    for dotted in ignored:
        parts = dotted.split(".")
        node: Any = data
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node:
            del node[parts[-1]]
            log.warning("config key '%s' in %s is not used by opsfleet; ignored", dotted, source)


def merge_sources(
    leaves: Iterable[tuple[str, ...]],
    *,
    path: Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    ignored: Iterable[str] = (),
) -> dict[str, Any]:
    """The raw document: file, then the variables of ``leaves`` found in ``env``, then overrides."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    drop_ignored(data, ignored, str(path))
    for leaf in leaves:
        name = env_name(leaf)
        if name in env:
            try:
                value = yaml.safe_load(env[name]) if env[name] != "" else ""
            except yaml.YAMLError as exc:
                raise ConfigError(f"environment variable {name}: cannot parse {env[name]!r}") from exc
            set_path(data, leaf, value)
    for dotted, value in overrides.items():
        if value is not None:
            set_path(data, tuple(dotted.split(".")), value)
    return data


def split_host_port(value: str, *, key: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) into its parts; ConfigError naming ``key`` otherwise."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"config key '{key}': expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"config key '{key}': port {port} out of range 0..65535")
    return host.strip("[]") or "0.0.0.0", port
