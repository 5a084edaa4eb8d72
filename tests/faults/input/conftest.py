"""Fixtures of the input-rule fault tests: Managers on port 0 on both backends (gRPC and REST)."""

from __future__ import annotations

from tests.integration.manager.conftest import running, start_manager
from tests.integration.web.conftest import fake_daemon, start_web, web

__all__ = ["fake_daemon", "running", "start_manager", "start_web", "web"]
