"""What happened to the latest update of each component, kept in ``<work_dir>/updates/status.json``."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

UpdateState = Literal["accepted", "downloading", "installing", "watching", "done", "rolled_back", "failed"]
ACTIVE_STATES = frozenset({"accepted", "downloading", "installing", "watching"})


@dataclass(frozen=True)
class UpdateStatus:
    component: str
    version: str
    state: UpdateState
    message: str = ""
    previous_version: str = ""
    started_at: int = 0
    finished_at: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class StatusBook:
    """The latest status per component; written to disk on every change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._latest: dict[str, UpdateStatus] = {}
        try:
            raw = json.loads(path.read_text())
            for item in raw:
                status = UpdateStatus(**item)
                # The daemon stopped in the middle of it (a daemon self-update settles itself).
                if status.active and status.component != "daemon":
                    status = replace(status, state="failed", message="interrupted by a daemon restart")
                self._latest[status.component] = status
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable update status file %s: %s", path, exc)

    def get(self, component: str) -> UpdateStatus | None:
        return self._latest.get(component)

    def all(self) -> list[UpdateStatus]:
        return sorted(self._latest.values(), key=lambda status: status.component)

    def put(self, status: UpdateStatus) -> None:
        self._latest[status.component] = status
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps([asdict(item) for item in self.all()], indent=1))
        os.replace(tmp, self._path)
