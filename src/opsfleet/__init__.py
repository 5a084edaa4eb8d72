"""opsfleet: fleet management with a central Manager and a Daemon on every node."""

from __future__ import annotations

__version__ = "0.1.0"
