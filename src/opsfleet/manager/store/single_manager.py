"""One Manager per SQLite database: an exclusive ``fcntl`` lock on ``<database>.lock``.

SQLite has no shared leader election and one writer at a time; two Managers on one file
would both run the singleton work (liveness, retention, alerts, rollouts) and fight for
the write lock. A second Manager started on the same file is therefore refused at start.
The lock belongs to the open file: the kernel drops it when the process exits, however it
exits (kill -9 included), so a stale lock file never blocks a restart.

Lifecycle: :meth:`acquire` once (raises :class:`FailedPrecondition` when another process
holds the lock), :meth:`release` at shutdown; ``release()`` is idempotent and safe before
``acquire()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from opsfleet.common.errors import FailedPrecondition


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; None for PostgreSQL and in-memory databases."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


class SingleManagerLock:
    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FailedPrecondition(
                f"another Manager (pid {holder}) is using the SQLite database {self.path.with_suffix('')}: "
                f"SQLite supports one Manager only (lock {self.path}); run replicas on PostgreSQL "
                "(docs/operations.md)"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
