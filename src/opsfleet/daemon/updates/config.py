"""The ``update:`` section of daemon.yaml (trusted keys, versions kept, watch period, limits).

The schema lives in :mod:`opsfleet.common.daemon_schema` with the rest of ``DaemonConfig``;
this module re-exports it for the update code.
"""

from __future__ import annotations

from opsfleet.common.daemon_schema import (
    DEFAULT_DAEMON_GRACE_PERIOD,
    DEFAULT_DOWNLOAD_TIMEOUT,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_KEEP_VERSIONS,
    DEFAULT_MAX_PACKAGE_BYTES,
    DEFAULT_ROLLBACK_TIMEOUT,
    UpdateSection,
)

__all__ = [
    "DEFAULT_DAEMON_GRACE_PERIOD",
    "DEFAULT_DOWNLOAD_TIMEOUT",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_KEEP_VERSIONS",
    "DEFAULT_MAX_PACKAGE_BYTES",
    "DEFAULT_ROLLBACK_TIMEOUT",
    "UpdateSection",
]
