"""manager.address: one Manager or several replicas; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsfleet.common.errors import ConfigError
from opsfleet.daemon.config import ManagerSection, load_daemon_config


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ManagerSection:
    path = tmp_path / "daemon.yaml"
    path.write_text(text)
    return load_daemon_config(path, env or {}, {}).manager


def test_one_address(tmp_path: Path) -> None:
    assert _load(tmp_path, "manager: {address: 'm1:9090'}\n").addresses == ["m1:9090"]


def test_a_list_of_replicas(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "manager:\n  address: [m1:9090, 'm2:9090', '[::1]:9090']\n")
    assert cfg.addresses == ["m1:9090", "m2:9090", "[::1]:9090"]


def test_comma_separated_from_the_environment(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "{}\n", {"OPSFLEET_MANAGER__ADDRESS": "m1:9090, m2:9090"})
    assert cfg.addresses == ["m1:9090", "m2:9090"]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("[m1:9090, m2]", "manager.address[1]"),
        ("[]", "manager.address"),
        ("[m1:9090, 7]", "manager.address"),
        ("'m1:9090,,m2:9090'", "manager.address"),
        ("{a: b}", "manager.address"),
    ],
)
def test_invalid_addresses_name_the_key(tmp_path: Path, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f"manager:\n  address: {value}\n")
    assert f"'{key}'" in str(info.value)
