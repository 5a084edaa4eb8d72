"""Manager config: defaults, seed file shape, precedence, errors naming the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from opsfleet.common.durations import format_duration, parse_duration
from opsfleet.common.errors import ConfigError
from opsfleet.manager.config import load_manager_config

SEED_STYLE = """
server:
  host: 0.0.0.0
  port: 8080
  mode: release
grpc:
  host: 0.0.0.0
  port: 9090
  tls:
    enabled: false
database:
  driver: postgres
  dsn: "host=127.0.0.1 port=5432 user=ops password=s3cret dbname=fleet sslmode=disable"
  max_open_conns: 100
redis:
  addr: localhost:6379
jwt:
  secret: abc
log:
  level: debug
  file: /var/log/manager.log
node:
  offline_after: 5m
metrics:
  retention_days: 7
"""


def test_defaults_without_any_config() -> None:
    cfg = load_manager_config(None, {}, {})
    assert cfg.grpc.host == "0.0.0.0" and cfg.grpc.port == 9090
    assert cfg.server.port == 8080
    assert cfg.node.offline_after == 180.0
    assert cfg.database_url() == "sqlite+aiosqlite:///data/opsfleet.db"


def test_seed_shaped_file_loads_with_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "manager.yaml"
    path.write_text(SEED_STYLE)
    with caplog.at_level(logging.WARNING):
        cfg = load_manager_config(path, {}, {})
    assert cfg.node.offline_after == 300.0 and cfg.metrics.retention_days == 7 and cfg.log.level == "debug"
    assert cfg.database_url() == "postgresql+asyncpg://ops:s3cret@127.0.0.1:5432/fleet"
    warned = " ".join(r.getMessage() for r in caplog.records)
    for key in ("redis", "log.file", "server.mode", "database.max_open_conns"):
        assert f"'{key}'" in warned


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "manager.yaml"
    path.write_text("grpc:\n  port: 1000\nnode:\n  offline_after: 1m\n")
    env = {"OPSFLEET_GRPC__PORT": "2000", "OPSFLEET_NODE__OFFLINE_AFTER": "90s", "OPSFLEET_UNRELATED": "x"}
    cfg = load_manager_config(path, env, {"grpc.port": 3000})
    assert cfg.grpc.port == 3000
    assert cfg.node.offline_after == 90.0
    assert load_manager_config(path, env, {}).grpc.port == 2000
    assert load_manager_config(path, {}, {}).grpc.port == 1000


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("grpc:\n  port: 70000\n", "grpc.port"),
        ("grpc:\n  port: abc\n", "grpc.port"),
        ("node:\n  offline_after: soon\n", "node.offline_after"),
        ("database:\n  driver: mysql\n", "database.driver"),
        ("grpc:\n  tls:\n    enabled: true\n", "grpc.tls"),
        ("grpcc:\n  port: 1\n", "grpcc"),
        ("metrics:\n  retention_days: 0\n", "metrics.retention_days"),
        ("metrics:\n  retention:\n    raw: 1s\n", "metrics.retention.raw"),
        ("metrics:\n  retention:\n    raw: 100d\n", "metrics.retention': metrics.retention.rollup_5m"),
        ("metrics:\n  retention:\n    rollup_1h: 30d\n", "metrics.retention': metrics.retention.rollup_1h"),
        ("metrics:\n  retention:\n    hourly: 30d\n", "metrics.retention.hourly"),
        ("database:\n  url: ftp://x\n", "database.url"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_manager_config(path, {}, {})
    assert f"'{key}" in info.value.message


def test_metric_retention_defaults_and_durations(tmp_path: Path) -> None:
    assert load_manager_config(None, {}, {}).metrics.retention.raw == 7 * 86400
    path = tmp_path / "m.yaml"
    path.write_text("metrics:\n  retention:\n    raw: 2d\n    rollup_5m: 30d\n    rollup_1h: 365d\n")
    retention = load_manager_config(path, {}, {}).metrics.retention
    assert (retention.raw, retention.rollup_5m, retention.rollup_1h) == (2 * 86400, 30 * 86400, 365 * 86400)


def test_rollup_interval_and_grace_defaults_durations_and_bounds(tmp_path: Path) -> None:
    metrics = load_manager_config(None, {}, {}).metrics
    assert (metrics.rollup_interval, metrics.rollup_grace) == (60.0, 120.0)
    path = tmp_path / "m.yaml"
    path.write_text("metrics:\n  rollup_interval: 30s\n  rollup_grace: 5m\n")
    metrics = load_manager_config(path, {}, {}).metrics
    assert (metrics.rollup_interval, metrics.rollup_grace) == (30.0, 300.0)
    path.write_text("metrics:\n  rollup_interval: 1h\n")
    with pytest.raises(ConfigError, match="rollup_interval"):
        load_manager_config(path, {}, {})
    path.write_text("metrics:\n  rollup_grace: 1s\n")
    with pytest.raises(ConfigError, match="rollup_grace"):
        load_manager_config(path, {}, {})
    path.write_text("metrics:\n  rollup_flush_interval: 10s\n")
    with pytest.raises(ConfigError, match="rollup_flush_interval"):
        load_manager_config(path, {}, {})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_manager_config(tmp_path / "missing.yaml", {}, {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpc: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_manager_config(bad, {}, {})


def test_database_urls() -> None:
    def url(u: str) -> str:
        return load_manager_config(None, {}, {"database.url": u}).database_url()

    assert url("sqlite:///relative.db") == "sqlite+aiosqlite:///relative.db"
    assert url("sqlite:////abs/path.db") == "sqlite+aiosqlite:////abs/path.db"
    assert url("postgresql://user@127.0.0.1:5432/db") == "postgresql+asyncpg://user@127.0.0.1:5432/db"


def test_durations() -> None:
    assert parse_duration("30s") == 30 and parse_duration("5m") == 300 and parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5 and parse_duration(12) == 12 and parse_duration("2") == 2
    for bad in ("", "5x", "m5", "-1s", True, None):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert format_duration(90) == "1m30s" and format_duration(0.25) == "250ms"
