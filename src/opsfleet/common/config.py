"""Shared configuration loading: YAML file < ``OPSFLEET_*`` environment < CLI flags.

Each process defines one frozen pydantic model; :func:`load_config` merges the three
sources, drops keys that the seed's files carried but opsfleet does not use (with a
warning), and validates. Every failure is a :class:`ConfigError` whose message names the
key. Environment variables are named after the key path: ``grpc.tls.enabled`` is
``OPSFLEET_GRPC__TLS__ENABLED``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from opsfleet.common.durations import parse_duration
from opsfleet.common.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "OPSFLEET_"

M = TypeVar("M", bound=BaseModel)

Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in config as ``30s``, ``5m``, ``1h`` or a number of seconds."""


class Section(BaseModel):
    """Base for config sections: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        path = (*prefix, name)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaf_paths(annotation, path)
        else:
            yield path


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _drop_ignored(data: dict[str, Any], ignored: Iterable[str], source: str) -> None:
    for dotted in ignored:
        parts = dotted.split(".")
        node: Any = data
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node:
            del node[parts[-1]]
            log.warning("config key '%s' in %s is not used by opsfleet; ignored", dotted, source)


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per failed key, each naming it (``config key 'a.b': message``); ``prefix``
    goes before the keys of a model validated as a section of a larger document."""
    lines = []
    for item in error.errors():
        key = ".".join([*([prefix] if prefix else []), *(str(p) for p in item["loc"])])
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"config key '{key}': {msg}")
    return "; ".join(lines)


def load_config(
    model: type[M],
    *,
    path: Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    ignored: Iterable[str] = (),
) -> M:
    """Merge file, environment and CLI overrides (dotted keys) and validate into ``model``."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    _drop_ignored(data, ignored, str(path))
    for leaf in _leaf_paths(model):
        name = env_name(leaf)
        if name in env:
            try:
                value = yaml.safe_load(env[name]) if env[name] != "" else ""
            except yaml.YAMLError as exc:
                raise ConfigError(f"environment variable {name}: cannot parse {env[name]!r}") from exc
            _set_path(data, leaf, value)
    for dotted, value in overrides.items():
        if value is not None:
            _set_path(data, tuple(dotted.split(".")), value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc


def split_host_port(value: str, *, key: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) into its parts; ConfigError naming ``key`` otherwise."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"config key '{key}': expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"config key '{key}': port {port} out of range 0..65535")
    return host.strip("[]") or "0.0.0.0", port
