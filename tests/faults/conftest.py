"""Fault-injection tests reuse the daemon integration fixtures (in-process Managers and Daemons)."""

from __future__ import annotations

from tests.integration.daemon.conftest import apps

__all__ = ["apps"]
