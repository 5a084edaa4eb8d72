"""The daemon's effective config: local daemon.yaml + central document, and last-known-good on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.errors import ConfigError
from opsfleet.daemon.config import load_daemon_config
from opsfleet.daemon.effective import LKG_FILE, KnownGood, load_known_good, overlay, save_known_good


def agent(agent_id: str, *args: str) -> dict[str, Any]:
    return {"id": agent_id, "binary_path": "/bin/sleep", "args": list(args) or ["60"]}


def local(**overrides: Any) -> Any:
    return load_daemon_config(
        None,
        {},
        {
            "agents": [agent("local-a"), agent("shared", "local")],
            "collectors.cpu.interval": 60,
            "collectors.memory.interval": 45,
            "manager.heartbeat_interval": 30,
            **overrides,
        },
    )


def test_local_agents_stay_central_same_id_overrides() -> None:
    eff = overlay(local(), {"agents": [agent("shared", "central"), agent("central-b")]})
    assert [s.id for s in eff.specs] == ["local-a", "shared", "central-b"]
    assert eff.specs[1].args == ["central"]


def test_collectors_and_interval_override_key_by_key() -> None:
    eff = overlay(
        local(), {"collectors": {"cpu": {"interval": "10s"}}, "manager": {"heartbeat_interval": "5s"}}
    )
    assert eff.collectors.cpu.interval == 10.0
    assert eff.collectors.memory.interval == 45.0
    assert eff.heartbeat_interval == 5.0
    unchanged = overlay(local(), {})
    assert unchanged.heartbeat_interval == 30.0 and unchanged.collectors.cpu.interval == 60.0


def test_invalid_central_document_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"config key 'config.agents\[0\].binary_path'"):
        overlay(local(), {"agents": [{"id": "x"}]})
    with pytest.raises(ConfigError, match=r"config key 'config.manager.address'"):
        overlay(local(), {"manager": {"address": "x:1"}})


def test_last_known_good_round_trip_and_corruption(tmp_path: Path) -> None:
    assert load_known_good(tmp_path) is None
    known = KnownGood("abc", {"agents": [agent("x")]})
    save_known_good(tmp_path, known)
    assert load_known_good(tmp_path) == known
    (tmp_path / LKG_FILE).write_text("{not json")
    assert load_known_good(tmp_path) is None
    (tmp_path / LKG_FILE).write_text('{"hash": "h", "document": {"agents": [{"id": "x"}]}}')
    assert load_known_good(tmp_path) is None  # would not load: ignored rather than crash the daemon
