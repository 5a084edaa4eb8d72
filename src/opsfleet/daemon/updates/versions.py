"""Installed versions of a component: ``<root>/<component>/<version>/`` and a ``current`` link.

The switch is atomic: a new symlink is made beside ``current`` and renamed over it, so a
crash leaves either the old or the new version current, never neither.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class VersionStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def component_dir(self, component: str) -> Path:
        return self.root / component

    def version_dir(self, component: str, version: str) -> Path:
        return self.component_dir(component) / version

    def incoming(self, component: str, version: str) -> Path:
        return self.component_dir(component) / f".incoming-{version}"

    def current(self, component: str) -> str | None:
        """The current version of ``component`` (None before its first install)."""
        link = self.component_dir(component) / "current"
        try:
            target = os.readlink(link)
        except OSError:
            return None
        version = Path(target).name
        return version if self.version_dir(component, version).is_dir() else None

    def switch(self, component: str, version: str | None) -> None:
        """Make ``version`` current (None: no current version)."""
        base = self.component_dir(component)
        link = base / "current"
        if version is None:
            link.unlink(missing_ok=True)
            return
        tmp = base / ".current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(version, tmp)
        os.replace(tmp, link)

    def prune(self, component: str, keep: int) -> list[str]:
        """Remove all but the ``keep`` most recently installed versions (never the current one)."""
        base = self.component_dir(component)
        current = self.current(component)
        installed = [
            p for p in base.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        ]
        installed.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        removed = []
        for path in installed[keep:]:
            if path.name != current:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed
