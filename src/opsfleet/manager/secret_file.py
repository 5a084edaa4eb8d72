"""A secret kept in a file readable by its owner only (mode 0600), created once.

Used for the generated JWT signing secret (``<data_dir>/jwt.secret``): keeping it out of the
database means a database backup or a read-only SQL account cannot mint tokens.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from opsfleet.common.errors import ConfigError

log = logging.getLogger(__name__)

MODE = 0o600


class SecretFile:
    """``read()`` the secret, or ``create()`` it; both are safe against a concurrent creator."""

    def __init__(self, path: Path, *, key: str = "jwt.secret_file") -> None:
        self.path = path
        self._key = key

    def read(self) -> str | None:
        """The secret, or None when the file does not exist. A looser mode is tightened to 0600."""
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                log.warning("%s had mode %o; setting it to 0600", self.path, mode)
                self.path.chmod(MODE)
            value = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"config key '{self._key}': cannot read {self.path}: {exc}") from exc
        if not value:
            raise ConfigError(f"config key '{self._key}': {self.path} is empty")
        return value

    def create(self, value: str) -> str:
        """Write ``value`` to a new 0600 file; when the file exists already, its secret wins."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
        except FileExistsError:
            existing = self.read()
            if existing is None:  # removed between the two calls: give up rather than loop
                raise ConfigError(f"config key '{self._key}': {self.path} vanished while created") from None
            return existing
        except OSError as exc:
            raise ConfigError(f"config key '{self._key}': cannot create {self.path}: {exc}") from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        os.chmod(self.path, MODE)  # the umask cannot loosen it, but a pre-set ACL default might
        return value
