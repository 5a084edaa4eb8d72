"""An agent's working directory: created (with its parents) before each start.

A configuration that names a directory nobody created yet (a fresh host, a seed config)
must not leave the agent in a restart loop; a directory that cannot be created is a
configuration problem that restarting cannot fix, so the agent fails at once with the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def ensure_work_dir(work_dir: str) -> str | None:
    """Create ``work_dir`` if it is missing; None when it exists now (or is empty), otherwise why not."""
    if not work_dir:
        return None  # the agent runs in the daemon's working directory
    path = Path(work_dir)
    if path.is_dir():
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        detail = exc.strerror or str(exc)
        if exc.filename and str(exc.filename) != work_dir:
            detail += f": {exc.filename}"
        return f"cannot create work_dir {work_dir!r}: {detail}"
    log.info("created agent work_dir %s", path)
    return None
