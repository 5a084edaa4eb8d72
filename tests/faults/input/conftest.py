"""Fixtures of the input-rule fault tests: Managers on port 0 (both backends) and a PostgreSQL-only one."""

from __future__ import annotations

from tests.integration.manager.conftest import running, start_manager

__all__ = ["running", "start_manager"]
