"""The dataclass config checker behind daemon.yaml: every failure names its key."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from opsfleet.common.errors import ConfigError
from opsfleet.common.schema import leaf_paths, parse, rule
from opsfleet.daemon.config import DaemonConfig, load_daemon_config


def _check_even(value: int) -> int:
    if value % 2:
        raise ValueError("must be even")
    return value


@dataclass(frozen=True, kw_only=True)
class Inner:
    port: int = field(default=0, metadata=rule(ge=0, le=65535))
    timeout: float = field(default=1.0, metadata=rule(duration=True, gt=0))


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = field(metadata=rule(min_length=1))
    mode: Literal["a", "b"] = "a"
    on: bool = True
    ratio: float = field(default=0.5, metadata=rule(ge=0, le=1))
    even: int = field(default=0, metadata=rule(check=_check_even))
    tags: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] | None = None
    inner: Inner = field(default_factory=Inner)


def _error(data: object, prefix: str = "") -> str:
    with pytest.raises(ConfigError) as info:
        parse(Outer, data, prefix)
    return info.value.message


def test_valid_data_with_defaults_and_conversions() -> None:
    got = parse(Outer, {"name": "n", "ratio": 1, "inner": {"port": 9090.0, "timeout": "1m30s"}})
    assert got == Outer(name="n", ratio=1.0, inner=Inner(port=9090, timeout=90.0))
    assert isinstance(got.ratio, float) and isinstance(got.inner.port, int)
    assert parse(Outer, {"name": "n", "args": None}).args is None
    with pytest.raises(FrozenInstanceError):
        got.name = "m"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "n", "colour": 1}, "config key 'colour': unknown key"),
        ({"name": "n", "inner": {"prot": 1}}, "config key 'inner.prot': unknown key"),
        ({}, "config key 'name': required"),
        ({"name": ""}, "config key 'name': must not be empty"),
        ({"name": 5}, "config key 'name': expected a string, got 5"),
        ({"name": "n", "on": "maybe"}, "config key 'on': expected true or false, got 'maybe'"),
        ({"name": "n", "on": 2}, "config key 'on': expected true or false, got 2"),
        ({"name": "n", "mode": "c"}, "config key 'mode': expected one of 'a' or 'b', got 'c'"),
        ({"name": "n", "ratio": True}, "config key 'ratio': expected a number, got True"),
        ({"name": "n", "ratio": 1.5}, "config key 'ratio': must be less than or equal to 1"),
        ({"name": "n", "ratio": -0.1}, "config key 'ratio': must be greater than or equal to 0"),
        ({"name": "n", "inner": {"port": 7e4}}, "config key 'inner.port': must be less than or equal to 65535"),  # noqa: E501
        ({"name": "n", "inner": {"port": 1.5}}, "config key 'inner.port': expected an integer, got 1.5"),
        ({"name": "n", "inner": {"port": "8O"}}, "config key 'inner.port': expected an integer, got '8O'"),
        ({"name": "n", "inner": {"timeout": 0}}, "config key 'inner.timeout': must be greater than 0"),
        ({"name": "n", "inner": {"timeout": "soon"}}, "config key 'inner.timeout': expected a duration"),
        ({"name": "n", "inner": []}, "config key 'inner': expected a mapping, got []"),
        ({"name": "n", "tags": "x"}, "config key 'tags': expected a list, got 'x'"),
        ({"name": "n", "tags": ["x", 2]}, "config key 'tags[1]': expected a string, got 2"),
        ({"name": "n", "env": {"A": 1}}, "config key 'env.A': expected a string, got 1"),
        ({"name": "n", "args": "x"}, "config key 'args': expected a list, got 'x'"),
        ({"name": "n", "even": 3}, "config key 'even': must be even"),
    ],
)  # fmt: skip
def test_each_failure_names_its_key(data: dict[str, object], message: str) -> None:
    assert _error(data).startswith(message)


def test_quoted_numbers_and_yes_no_words_load_as_before() -> None:
    got = parse(
        Outer, {"name": "n", "on": "no", "ratio": "0.25", "inner": {"port": " 9090 ", "timeout": "2"}}
    )
    assert got == Outer(name="n", on=False, ratio=0.25, inner=Inner(port=9090, timeout=2.0))
    assert parse(Outer, {"name": "n", "on": 0}).on is False
    assert parse(Outer, {"name": "n", "on": "Yes"}).on is True


def test_all_failures_reported_and_prefixed() -> None:
    message = _error({"name": "", "bogus": 1, "inner": {"port": -1}}, "agents[2]")
    assert message == (
        "config key 'agents[2].bogus': unknown key; "
        "config key 'agents[2].name': must not be empty; "
        "config key 'agents[2].inner.port': must be greater than or equal to 0"
    )


def test_top_level_must_be_a_mapping() -> None:
    assert _error(["x"]) == "config key '(top level)': expected a mapping, got ['x']"


def test_leaf_paths_walk_nested_sections() -> None:
    paths = list(leaf_paths(Outer))
    assert ("inner", "port") in paths and ("name",) in paths and ("inner",) not in paths


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> DaemonConfig:
    path = tmp_path / "daemon.yaml"
    path.write_text(text)
    return load_daemon_config(path, env or {}, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("manager: {heartbeat_interval: 0.5}\n", "config key 'manager.heartbeat_interval': must be greater"),
        ("manager: {hearbeat_interval: 5s}\n", "config key 'manager.hearbeat_interval': unknown key"),
        ("daemon: {grpc_port: 'x'}\n", "config key 'daemon.grpc_port': expected an integer, got 'x'"),
        ("daemon: {log_level: loud}\n", "config key 'daemon.log_level': expected one of 'debug'"),
        ("daemon: {id: 'a b'}\n", "config key 'daemon.id': must be 1-128 characters"),
        ("spool: {batch_size: 1001}\n", "config key 'spool.batch_size': must be less than or equal to 1000"),
        ("collectors: {disk: {interval: 0s}}\n", "config key 'collectors.disk.interval': must be greater"),
        ("update: {trusted_keys: [bm90]}\n", "config key 'update.trusted_keys': not a base64 Ed25519"),
        ("agents: [{id: a}]\n", "config key 'agents[0].binary_path': required"),
    ],
)  # fmt: skip
def test_daemon_yaml_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.message.startswith(message)


def test_environment_overrides_the_file_and_is_checked(tmp_path: Path) -> None:
    config = _load(
        tmp_path, "manager: {heartbeat_interval: 10s}\n", {"OPSFLEET_MANAGER__HEARTBEAT_INTERVAL": "1m"}
    )
    assert config.manager.heartbeat_interval == 60.0
    assert config.collectors == DaemonConfig().collectors
    with pytest.raises(
        ConfigError, match=r"^config key 'spool\.max_bytes': must be greater than or equal to 65536"
    ):
        _load(tmp_path, "{}\n", {"OPSFLEET_SPOOL__MAX_BYTES": "10"})
