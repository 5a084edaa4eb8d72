"""The daemon's effective config: its local daemon.yaml with the central document laid over it,
and the last-known-good central document kept on disk.

Overlay rules (docs/configuration.md, "Central configuration"):

- agents: local agents stay; a central agent with the same id replaces the local one;
  central agents come after the local ones in start order;
- collectors: central keys override the local ones, key by key;
- manager.heartbeat_interval: the central value, when set, overrides the local one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opsfleet.common.central_config import validate_central
from opsfleet.common.daemon_schema import AgentSpec, CollectorsSection, DaemonConfig, deep_merge
from opsfleet.common.durations import parse_duration
from opsfleet.common.errors import ConfigError
from opsfleet.common.schema import parse

log = logging.getLogger(__name__)

LKG_FILE = "central-config.json"


@dataclass(frozen=True)
class Effective:
    specs: list[AgentSpec]
    collectors: CollectorsSection
    heartbeat_interval: float


def overlay(local: DaemonConfig, central: dict[str, Any]) -> Effective:
    """``local`` with ``central`` laid over it; ConfigError naming the key when it cannot load."""
    central_specs = validate_central(central)
    by_id = {spec.id: spec for spec in central_specs}
    specs = [by_id.pop(spec.id, spec) for spec in local.agent_specs()]
    specs.extend(spec for spec in central_specs if spec.id in by_id)
    collectors = parse(
        CollectorsSection, deep_merge(asdict(local.collectors), central.get("collectors") or {})
    )
    interval = local.manager.heartbeat_interval
    manager = central.get("manager") or {}
    if "heartbeat_interval" in manager:
        interval = parse_duration(manager["heartbeat_interval"])
    return Effective(specs=specs, collectors=collectors, heartbeat_interval=interval)


@dataclass(frozen=True)
class KnownGood:
    """The last central document this daemon applied, and its hash."""

    hash: str
    document: dict[str, Any]


def load_known_good(work_dir: Path) -> KnownGood | None:
    """The stored last-known-good document; None when absent or unreadable (logged)."""
    path = work_dir / LKG_FILE
    try:
        raw = json.loads(path.read_text())
        document = raw["document"]
        validate_central(document)
        return KnownGood(str(raw["hash"]), document)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        log.warning("ignoring the last-known-good central config %s: %s", path, exc)
        return None


def save_known_good(work_dir: Path, known: KnownGood) -> None:
    """Write atomically (temporary file, fsync, rename)."""
    path = work_dir / LKG_FILE
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        json.dump({"hash": known.hash, "document": known.document}, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
