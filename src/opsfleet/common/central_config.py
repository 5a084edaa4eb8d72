"""The central part of a daemon's config: what a policy's ``config:`` holds and GetConfig delivers.

Shared by the Manager (validation at write time, the document it serves) and the Daemon
(validation before applying). A central document is a mapping with at most these keys,
each with the shape of the same section of ``daemon.yaml``:

``agents``          full agent entries (validated with :func:`merge_agents`)
``agent_defaults``  merged under this document's own agents only
``collectors``      any subset of ``collectors:`` (missing keys keep the local value)
``manager``         only ``heartbeat_interval``

Every failure is a :class:`ConfigError` naming the key (``config key
'config.agents[0].binary_path': required``). The canonical form (sorted keys, JSON)
is what revision and config hashes are computed over.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml

from opsfleet.common.daemon_schema import (
    AgentSpec,
    CollectorsSection,
    ManagerSection,
    merge_agents,
)
from opsfleet.common.errors import ConfigError
from opsfleet.common.schema import parse

CENTRAL_KEYS = ("agents", "agent_defaults", "collectors", "manager")
CENTRAL_MANAGER_KEYS = ("heartbeat_interval",)


def canonical_json(doc: Any) -> bytes:
    """One byte string per document: sorted keys, no whitespace."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(doc: Any) -> str:
    """sha256 (hex) of the canonical form."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def to_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, allow_unicode=True)


def _renamed(exc: ConfigError, prefix: str) -> ConfigError:
    return ConfigError(str(exc).replace("config key '", f"config key '{prefix}."))


def validate_central(doc: Any, *, prefix: str = "config") -> list[AgentSpec]:
    """Check a central document against the daemon's schema; its agents as validated specs."""
    if doc is None:
        return []
    if not isinstance(doc, Mapping):
        raise ConfigError(f"config key '{prefix}': expected a mapping")
    for key in doc:
        if key not in CENTRAL_KEYS:
            raise ConfigError(
                f"config key '{prefix}.{key}': unknown key (allowed: {', '.join(CENTRAL_KEYS)})"
            )
    collectors = doc.get("collectors") or {}
    if not isinstance(collectors, Mapping):
        raise ConfigError(f"config key '{prefix}.collectors': expected a mapping")
    parse(CollectorsSection, collectors, f"{prefix}.collectors")
    manager = doc.get("manager") or {}
    if not isinstance(manager, Mapping):
        raise ConfigError(f"config key '{prefix}.manager': expected a mapping")
    for key in manager:
        if key not in CENTRAL_MANAGER_KEYS:
            raise ConfigError(
                f"config key '{prefix}.manager.{key}': cannot be set centrally "
                f"(allowed: {', '.join(CENTRAL_MANAGER_KEYS)})"
            )
    parse(ManagerSection, manager, f"{prefix}.manager")
    try:
        return merge_agents(doc.get("agent_defaults") or {}, doc.get("agents") or [])
    except ConfigError as exc:
        raise _renamed(exc, prefix) from exc


def parse_central_yaml(data: bytes) -> dict[str, Any]:
    """The document GetConfig delivered (empty bytes: an empty document), validated."""
    if not data.strip():
        return {}
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"central config is not valid YAML: {exc}") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError("central config must hold a mapping at the top level")
    validate_central(doc)
    return doc
