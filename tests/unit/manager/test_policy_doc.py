"""Policy documents: validation naming the key, merge rules, conflicts, rollout settings, diffs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from opsfleet.common.central_config import content_hash, parse_central_yaml, validate_central
from opsfleet.common.errors import ConfigError, Conflict, InvalidArgument
from opsfleet.manager.services.policy_doc import (
    check_conflicts,
    merge,
    parse_policy,
    parse_rollout,
    pins,
    unified_diff,
)


def policy(name: str, priority: int = 0, selector: dict[str, str] | None = None, **config: Any) -> Any:
    return parse_policy({"name": name, "selector": selector or {}, "priority": priority, "config": config})


def agent(agent_id: str, *args: str, **extra: Any) -> dict[str, Any]:
    return {"id": agent_id, "binary_path": "/bin/sleep", "args": list(args) or ["60"], **extra}


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"name": "p", "config": {"agents": [{"id": "a"}]}}, "config.agents[0].binary_path"),
        (
            {"name": "p", "config": {"agents": [agent("a", restart={"policy": "sometimes"})]}},
            "config.agents[0].restart.policy",
        ),
        (
            {"name": "p", "config": {"collectors": {"cpu": {"interval": "0.5s"}}}},
            "config.collectors.cpu.interval",
        ),
        ({"name": "p", "config": {"collectors": {"gpu": {}}}}, "config.collectors.gpu"),
        ({"name": "p", "config": {"manager": {"address": "evil:1"}}}, "config.manager.address"),
        (
            {"name": "p", "config": {"manager": {"heartbeat_interval": "soon"}}},
            "config.manager.heartbeat_interval",
        ),
        ({"name": "p", "config": {"plugins": []}}, "config.plugins"),
        ({"name": "p", "config": {"agent_defaults": {"colour": "red"}}}, "config.agent_defaults.colour"),
        ({"name": "p", "config": {"agents": [agent("a"), agent("a")]}}, "config.agents[1].id"),
        ({"name": "bad name!"}, "name"),
        ({"name": "p", "selector": {"env": 3}}, "selector"),
        ({"name": "p", "priority": "high"}, "priority"),
        ({"name": "p", "rollout": {"max_parallel": 0}}, "rollout.max_parallel"),
        ({"name": "p", "rollout": {"pause_on_failure": "lots"}}, "rollout.pause_on_failure"),
        ({"name": "p", "colour": 1}, "colour"),
    ],
)
def test_validation_names_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_policy(raw)
    assert f"config key '{key}'" in str(info.value)


def test_daemon_side_validation_uses_the_same_schema() -> None:
    with pytest.raises(ConfigError, match=r"config key 'config.agents\[0\].binary_path'"):
        parse_central_yaml(b"agents:\n  - id: a\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_central_yaml(b"agents: [")
    assert parse_central_yaml(b"") == {}
    assert [s.id for s in validate_central({"agents": [agent("x")]})] == ["x"]


def test_merge_agents_by_id_maps_by_key_higher_priority_wins() -> None:
    low = policy(
        "base",
        priority=1,
        agents=[agent("beat", "--low"), agent("exporter")],
        collectors={"cpu": {"interval": "30s", "enabled": True}, "disk": {"mount_points": ["/"]}},
        manager={"heartbeat_interval": "20s"},
    )
    high = policy(
        "web",
        priority=10,
        selector={"role": "web"},
        agents=[agent("beat", "--high")],
        collectors={"cpu": {"interval": "10s"}},
    )
    merged = merge([high, low])
    assert [a["id"] for a in merged["agents"]] == ["beat", "exporter"]
    assert merged["agents"][0]["args"] == ["--high"]
    assert merged["collectors"] == {
        "cpu": {"interval": "10s", "enabled": True},
        "disk": {"mount_points": ["/"]},
    }
    assert merged["manager"] == {"heartbeat_interval": "20s"}
    assert merge([]) == {}
    # Order of the inputs does not matter: same document, same hash.
    assert content_hash(merge([low, high])) == content_hash(merged)


def test_agent_defaults_apply_to_their_own_policy_only() -> None:
    a = policy("a", agents=[agent("one")], agent_defaults={"env": {"FROM": "a"}})
    b = policy("b", priority=1, agents=[agent("two")])
    merged = merge([a, b])
    by_id = {x["id"]: x for x in merged["agents"]}
    assert by_id["one"]["env"] == {"FROM": "a"}
    assert "env" not in by_id["two"]
    assert "agent_defaults" not in merged


def test_equal_priority_conflicts_are_refused_at_write_time() -> None:
    a = policy("a", priority=5, selector={"env": "prod"}, agents=[agent("beat", "--a")])
    same_key = policy("b", priority=5, selector={"role": "web"}, agents=[agent("beat", "--b")])
    with pytest.raises(Conflict, match=r"config key 'config.agents\[beat\]'.*policy 'a'"):
        check_conflicts(same_key, [a])
    # Disjoint selectors, a different priority, or the same value do not conflict.
    check_conflicts(policy("c", priority=5, selector={"env": "dev"}, agents=[agent("beat", "--c")]), [a])
    check_conflicts(policy("d", priority=6, agents=[agent("beat", "--d")]), [a])
    check_conflicts(policy("e", priority=5, agents=[agent("beat", "--a")]), [a])
    coll = policy("f", priority=0, collectors={"cpu": {"interval": "10s"}})
    with pytest.raises(Conflict, match=r"config\.collectors\.cpu\.interval"):
        check_conflicts(policy("g", priority=0, collectors={"cpu": {"interval": "20s"}}), [coll])


def test_revision_hash_is_canonical() -> None:
    one = parse_policy({"name": "p", "selector": {"a": "1", "b": "2"}, "config": {"agents": [agent("x")]}})
    two = parse_policy({"config": {"agents": [agent("x")]}, "selector": {"b": "2", "a": "1"}, "name": "p"})
    assert one.hash == two.hash and len(one.hash) == 64
    assert policy("p", agents=[agent("x", "1")]).hash != policy("p", agents=[agent("x", "2")]).hash


def test_rollout_settings() -> None:
    assert parse_rollout({"max_parallel": 5}).window(1000) == 5
    assert parse_rollout({"max_parallel": "10%"}).window(1000) == 100
    assert parse_rollout({"max_parallel": "10%"}).window(3) == 1
    assert parse_rollout({"pause_on_failure": "20%"}).pause_on_failure == 20.0


def test_unified_diff() -> None:
    old = policy("p", agents=[agent("x", "1")]).as_dict()
    new = policy("p", agents=[agent("x", "2")]).as_dict()
    diff = unified_diff(old, new, "p@1", "p@2")
    assert "--- p@1" in diff and "+++ p@2" in diff
    assert "-    - '1'" in diff and "+    - '2'" in diff
    assert unified_diff(old, old, "a", "b") == ""


def pinned(name: str, priority: int, selector: dict[str, str], **versions: str) -> Any:
    return parse_policy(
        {
            "name": name,
            "selector": selector,
            "priority": priority,
            "update": {k.replace("_", ":"): v for k, v in versions.items()},
        }
    )


def test_version_pins_parse_merge_by_priority_and_conflict() -> None:
    low = pinned("low", 0, {"env": "prod"}, agent_web="1", daemon="0.9")
    high = pinned("high", 5, {"role": "web"}, agent_web="2")
    assert low.update == {"agent:web": "1", "daemon": "0.9"}
    assert low.as_dict()["update"] == {"agent:web": "1", "daemon": "0.9"}
    assert pins([low, high]) == {"agent:web": ("2", "high"), "daemon": ("0.9", "low")}
    assert parse_policy({"name": "n", "update": {"agent:web": 3}}).update == {"agent:web": "3"}
    check_conflicts(pinned("same", 0, {"env": "prod"}, agent_web="1"), [low])  # same version: fine
    with pytest.raises(Conflict, match=r"config key 'update\.agent:web' is also set by policy 'low'"):
        check_conflicts(pinned("other", 0, {"role": "web"}, agent_web="3"), [low])


@pytest.mark.parametrize(
    ("update", "key"),
    [
        ("agent:web=1", "update"),
        ({"web": "1"}, "update.web"),
        ({"agent:web": "1 2"}, "update.agent:web"),
        ({"agent:web": True}, "update.agent:web"),
    ],
)
def test_bad_version_pins_name_the_key(update: Any, key: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"config key '{key}'")):
        parse_policy({"name": "n", "update": update})
