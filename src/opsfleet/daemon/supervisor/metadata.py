"""What the daemon remembers about an agent across its own restarts.

One JSON file per agent in the state directory, rewritten atomically (temp file, fsync,
``os.replace``, fsync of the directory) by its one writer, the agent's state machine. A
missing or unreadable file starts from zero: losing counters must never keep an agent down.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_RESTART_RECORDS = 50


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class RestartRecord:
    time: float
    reason: str


@dataclass(frozen=True)
class ProcessRecord:
    """Identifies one agent process beyond its pid, which the kernel may hand out again."""

    pid: int
    pgid: int
    create_time: float  # psutil's create_time: the start time of the process, unix seconds


def _process_from_json(data: Any) -> ProcessRecord | None:
    if not isinstance(data, dict):
        return None
    record = ProcessRecord(int(data["pid"]), int(data["pgid"]), float(data["create_time"]))
    return record if record.pid > 0 and record.pgid > 0 else None


@dataclass
class AgentMetadata:
    restart_count: int = 0
    last_exit_reason: str = ""
    last_exit_time: float = 0.0
    last_start_time: float = 0.0
    # Set by an operator's stop, cleared by an operator's start/restart: survives daemon restarts.
    manually_stopped: bool = False
    restarts: list[RestartRecord] = field(default_factory=list)
    # The agent's process while it runs; still set at start-up means a previous daemon died
    # without stopping it (see orphans.py).
    process: ProcessRecord | None = None

    def record_restart(self, when: float, reason: str) -> None:
        self.restart_count += 1
        self.restarts.append(RestartRecord(when, reason))
        del self.restarts[:-MAX_RESTART_RECORDS]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentMetadata:
        return cls(
            restart_count=int(data.get("restart_count", 0)),
            last_exit_reason=str(data.get("last_exit_reason", "")),
            last_exit_time=float(data.get("last_exit_time", 0.0)),
            last_start_time=float(data.get("last_start_time", 0.0)),
            manually_stopped=bool(data.get("manually_stopped", False)),
            restarts=[RestartRecord(float(r["time"]), str(r["reason"])) for r in data.get("restarts", [])],
            process=_process_from_json(data.get("process")),
        )


class MetadataStore:
    """Load and save one agent's :class:`AgentMetadata` at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> AgentMetadata:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AgentMetadata()
        except OSError as exc:
            log.warning("cannot read agent metadata %s: %s; starting from zero", self.path, exc)
            return AgentMetadata()
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            return AgentMetadata.from_json(data)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("agent metadata %s is corrupt (%s); starting from zero", self.path, exc)
            return AgentMetadata()

    def save(self, meta: AgentMetadata) -> None:
        """Write ``meta``; a failing disk is logged, never raised (the agent keeps being supervised)."""
        try:
            atomic_write(self.path, json.dumps(meta.to_json(), indent=1).encode("utf-8"))
        except OSError as exc:
            log.warning("cannot write agent metadata %s: %s", self.path, exc)
