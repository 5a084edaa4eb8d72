"""The shipped sample configs load and equal the built-in defaults where they restate them."""

from __future__ import annotations

from pathlib import Path

from opsfleet.daemon.config import DaemonConfig, load_daemon_config
from opsfleet.manager.config import ManagerConfig, load_manager_config

ROOT = Path(__file__).resolve().parents[2]


def test_manager_sample_restates_defaults() -> None:
    sample = load_manager_config(ROOT / "configs" / "manager.yaml", {})
    assert sample == ManagerConfig()


def test_daemon_sample_loads() -> None:
    sample = load_daemon_config(ROOT / "configs" / "daemon.yaml", {})
    defaults = DaemonConfig()
    assert sample.manager == defaults.manager
    assert sample.collectors == defaults.collectors
    assert sample.spool == defaults.spool
    assert [a["id"] for a in sample.agents] == ["sample"]
