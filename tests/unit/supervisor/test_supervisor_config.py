"""Agent entries of daemon.yaml: defaults, deep merge, validation errors that name the key."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from opsfleet.common.errors import ConfigError
from opsfleet.common.schema import parse
from opsfleet.daemon.supervisor.config import AgentSpec, merge_agents


def test_defaults_follow_the_seed_shape() -> None:
    (spec,) = merge_agents({}, [{"id": "fb", "type": "filebeat", "binary_path": "/usr/bin/filebeat"}])
    assert spec.enabled is True
    assert spec.restart.policy == "always"
    assert spec.restart.max_retries == 5
    assert (spec.restart.backoff_base, spec.restart.backoff_max) == (1.0, 60.0)
    assert (spec.restart.retry_window, spec.restart.stable_after) == (300.0, 60.0)
    hc = spec.health_check
    assert (hc.interval, hc.heartbeat_timeout, hc.threshold_duration, hc.probe_timeout) == (
        10.0,
        0.0,
        60.0,
        5.0,
    )
    assert (hc.cpu_threshold, hc.memory_threshold, hc.http_url, hc.tcp_port) == (0.0, 0, "", 0)
    assert (spec.start_seconds, spec.stop_timeout, spec.metrics_interval) == (1.0, 10.0, 10.0)
    assert (spec.log_max_bytes, spec.log_backups) == (10 * 1024 * 1024, 3)
    assert spec.version == ""


def test_defaults_are_deep_merged_and_entries_win() -> None:
    defaults = {
        "env": {"A": "1", "B": "2"},
        "restart": {"policy": "on-failure", "backoff_base": "2s"},
        "health_check": {"interval": "30s"},
        "stop_timeout": "1m",
    }
    entries: list[dict[str, Any]] = [
        {"id": "a", "binary_path": "/bin/a", "env": {"B": "3"}, "restart": {"max_retries": 2}},
        {"id": "b", "binary_path": "/bin/b", "restart": {"policy": "never"}, "stop_timeout": 5},
    ]
    a, b = merge_agents(defaults, entries)
    assert a.env == {"A": "1", "B": "3"}
    assert (a.restart.policy, a.restart.backoff_base, a.restart.max_retries) == ("on-failure", 2.0, 2)
    assert a.health_check.interval == 30.0
    assert a.stop_timeout == 60.0
    assert (b.restart.policy, b.restart.backoff_base, b.stop_timeout) == ("never", 2.0, 5.0)
    assert defaults["env"] == {"A": "1", "B": "2"}  # not modified by the merge


def test_durations_and_thresholds_are_parsed() -> None:
    (spec,) = merge_agents(
        None,
        [
            {
                "id": "t",
                "binary_path": "/bin/t",
                "health_check": {
                    "heartbeat_timeout": "500ms",
                    "memory_threshold": 104857600,
                    "cpu_threshold": 90,
                },
                "restart": {"retry_window": "1h30m"},
            }
        ],
    )
    assert spec.health_check.heartbeat_timeout == 0.5
    assert spec.health_check.memory_threshold == 100 * 1024 * 1024
    assert spec.health_check.cpu_threshold == 90.0
    assert spec.restart.retry_window == 5400.0


@pytest.mark.parametrize(
    ("agent_type", "config_file", "args"),
    [
        ("filebeat", "/etc/filebeat.yml", ["-c", "/etc/filebeat.yml"]),
        ("telegraf", "/etc/telegraf.conf", ["--config", "/etc/telegraf.conf"]),
        ("node_exporter", "", ["--web.listen-address=127.0.0.1:9100"]),
        ("custom", "/etc/x.conf", []),
    ],
)
def test_command_line_defaults_by_type(agent_type: str, config_file: str, args: list[str]) -> None:
    spec = parse(
        AgentSpec, {"id": "x", "type": agent_type, "binary_path": "/opt/bin", "config_file": config_file}
    )
    assert spec.command() == ["/opt/bin", *args]


def test_explicit_args_replace_type_defaults() -> None:
    spec = parse(
        AgentSpec,
        {"id": "x", "type": "filebeat", "binary_path": "/opt/fb", "config_file": "/c", "args": ["-e"]},
    )
    assert spec.command() == ["/opt/fb", "-e"]
    assert parse(AgentSpec, {"id": "x", "binary_path": "/b", "args": []}).command() == ["/b"]


@pytest.mark.parametrize(
    ("entries", "key", "text"),
    [
        ([{"id": "a", "binary_path": "/a"}, {"id": "b", "binary_path": "/b", "restart": {"policy": "maybe"}}],
         "agents[1].restart.policy", "'always', 'on-failure' or 'never'"),
        ([{"id": "a b", "binary_path": "/a"}], "agents[0].id", "must match"),
        ([{"id": "x" * 129, "binary_path": "/a"}], "agents[0].id", "must match"),
        ([{"id": "a", "binary_path": "/a", "type": "nginx"}], "agents[0].type", "filebeat"),
        ([{"id": "a", "binary_path": "/a", "colour": "red"}], "agents[0].colour", "unknown key"),
        ([{"id": "a", "binary_path": "/a", "health_check": {"interval": "soon"}}],
         "agents[0].health_check.interval", "duration"),
        ([{"id": "a", "binary_path": "/a", "health_check": {"memory_threshold": -1}}],
         "agents[0].health_check.memory_threshold", "greater than or equal to 0"),
        ([{"id": "a", "binary_path": "/a", "health_check": {"http_url": "localhost:80"}}],
         "agents[0].health_check.http_url", "http://"),
        ([{"id": "a"}], "agents[0].binary_path", "config key 'agents[0].binary_path': required"),
        ([{"id": "a", "binary_path": "/a"}, {"id": "a", "binary_path": "/b"}], "agents[1].id", "duplicate"),
        (["a"], "agents[0]", "expected a mapping"),
    ],
)  # fmt: skip
def test_errors_name_the_key(entries: list[object], key: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        merge_agents({}, entries)  # type: ignore[arg-type]
    assert f"config key '{key}'" in info.value.message
    assert text in info.value.message


def test_agent_defaults_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"'agent_defaults\.nonsense': unknown key"):
        merge_agents({"nonsense": 1}, [])
    with pytest.raises(ConfigError, match=r"'agent_defaults\.id'"):
        merge_agents({"id": "x"}, [])


def test_specs_are_frozen() -> None:
    (spec,) = merge_agents({}, [{"id": "a", "binary_path": "/a"}])
    with pytest.raises(FrozenInstanceError):
        spec.enabled = False  # type: ignore[misc]
