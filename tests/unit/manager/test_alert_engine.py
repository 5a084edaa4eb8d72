"""Rule evaluation of the alert engine, with an injected clock (no sleeping, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from opsfleet.manager.alerts.engine import AgentSnapshot, AlertEngine
from opsfleet.manager.alerts.model import Alert, AlertKey, AlertState
from opsfleet.manager.alerts.settings import RulesSection


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(**rules: Any) -> tuple[AlertEngine, Clock, list[tuple[str, str, str, str]]]:
    clock = Clock()
    seen: list[tuple[str, str, str, str]] = []

    def emit(alert: Alert) -> None:
        seen.append((alert.key.rule, alert.key.node_id, alert.key.subject, alert.state.value))

    engine = AlertEngine(RulesSection.model_validate(rules), clock=clock, emit=emit)
    return engine, clock, seen


def test_node_offline_fires_and_resolves_on_liveness_transitions() -> None:
    engine, clock, seen = make()
    engine.node_status("n1", False)
    assert seen == [("node_offline", "n1", "", "firing")]
    alert = engine.firing()[0]
    assert alert.starts_at == clock.now and alert.severity == "critical"
    engine.node_status("n1", False)
    assert len(seen) == 1
    clock.now += 30
    engine.node_status("n1", True)
    assert seen[-1] == ("node_offline", "n1", "", "resolved")
    assert alert.state is AlertState.RESOLVED and alert.ends_at == clock.now
    assert engine.firing() == []


def test_usage_fires_only_after_its_for_duration() -> None:
    engine, clock, seen = make(cpu_high={"threshold": 80, "for": "5m"})
    engine.usage("n1", "cpu", 95.0)
    engine.tick()
    assert seen == []
    clock.now += 299
    engine.usage("n1", "cpu", 90.0)
    engine.tick()
    assert seen == []
    clock.now += 1
    engine.tick()
    assert seen == [("cpu_high", "n1", "", "firing")]
    assert engine.firing()[0].starts_at == clock.now - 300  # started when the condition began
    assert engine.firing()[0].summary == "cpu usage 90.0% above 80%"  # the latest active reading
    engine.usage("n1", "cpu", 10.0)
    assert seen[-1] == ("cpu_high", "n1", "", "resolved")


def test_usage_dip_restarts_the_for_window() -> None:
    engine, clock, seen = make(memory_high={"threshold": 80, "for": 60})
    engine.usage("n1", "memory", 95.0)
    clock.now += 50
    engine.usage("n1", "memory", 50.0)
    engine.usage("n1", "memory", 95.0)
    clock.now += 50
    engine.tick()
    assert seen == []
    clock.now += 10
    engine.tick()
    assert seen == [("memory_high", "n1", "", "firing")]


def test_disabled_rule_never_fires_and_resolves_restored_alerts() -> None:
    engine, _clock, seen = make(disk_high={"enabled": False, "for": 0})
    engine.usage("n1", "disk", 99.0)
    assert seen == []
    restored = Alert(AlertKey("disk_high", "n2"), "warning", "old", starts_at=1.0, id=7)
    engine.restore([restored])
    engine.usage("n2", "disk", 99.0)
    assert seen == [("disk_high", "n2", "", "resolved")]


def test_agent_failed_fires_per_agent_and_resolves_when_running_or_removed() -> None:
    engine, _clock, seen = make()
    engine.agents_synced("n1", [AgentSnapshot("a", "running", 10), AgentSnapshot("b", "error", 0)])
    assert seen == [("agent_failed", "n1", "b", "firing")]
    engine.agents_synced("n1", [AgentSnapshot("a", "error", 0), AgentSnapshot("b", "running", 11)])
    assert seen[1:] == [("agent_failed", "n1", "a", "firing"), ("agent_failed", "n1", "b", "resolved")]
    engine.agents_synced("n1", [])
    assert seen[-1] == ("agent_failed", "n1", "a", "resolved")


def test_agent_flapping_counts_new_pids_within_the_window() -> None:
    engine, clock, seen = make(agent_flapping={"restarts": 3, "window": "10m"})
    for pid in (100, 101, 102):
        engine.agents_synced("n1", [AgentSnapshot("a", "running", pid)])
        clock.now += 60
    engine.agents_synced("n1", [AgentSnapshot("a", "starting", 0)])  # between two processes
    assert seen == []
    engine.agents_synced("n1", [AgentSnapshot("a", "running", 103)])
    assert seen == [("agent_flapping", "n1", "a", "firing")]
    assert "3 times" in engine.firing()[0].summary
    clock.now += 600
    engine.tick()
    assert seen[-1] == ("agent_flapping", "n1", "a", "resolved")


def test_config_and_update_outcomes() -> None:
    engine, _clock, seen = make()
    engine.config_state("n1", "failed", "bad yaml")
    engine.config_state("n1", "applying", "")
    engine.update_outcome("n1", "agent:filebeat", "rolled_back", "health check failed")
    assert seen == [
        ("config_apply_failed", "n1", "", "firing"),
        ("update_rolled_back", "n1", "agent:filebeat", "firing"),
    ]
    assert "bad yaml" in engine.firing()[0].summary
    engine.update_outcome("n1", "agent:filebeat", "failed", "")  # neither a rollback nor a success
    engine.config_state("n1", "applied", "")
    engine.update_outcome("n1", "agent:filebeat", "done", "")
    assert seen[2:] == [
        ("config_apply_failed", "n1", "", "resolved"),
        ("update_rolled_back", "n1", "agent:filebeat", "resolved"),
    ]


def test_forget_resolves_every_alert_of_the_node() -> None:
    engine, _clock, seen = make()
    engine.node_status("n1", False)
    engine.config_state("n1", "failed", "")
    engine.node_status("n2", False)
    engine.forget("n1")
    assert sorted(s for s in seen if s[3] == "resolved") == [
        ("config_apply_failed", "n1", "", "resolved"),
        ("node_offline", "n1", "", "resolved"),
    ]
    assert [a.key.node_id for a in engine.firing()] == ["n2"]


def test_fingerprint_is_stable_and_labels_name_the_alert() -> None:
    alert = Alert(
        AlertKey("agent_failed", "n1", "web"),
        "critical",
        "x",
        starts_at=0.0,
        hostname="h1",
        node_labels={"env": "prod", "team.name": "ops"},
    )
    assert alert.fingerprint == AlertKey("agent_failed", "n1", "web").fingerprint()
    assert alert.fingerprint != AlertKey("agent_failed", "n1", "db").fingerprint()
    assert alert.all_labels() == {
        "alertname": "agent_failed",
        "rule": "agent_failed",
        "severity": "critical",
        "node_id": "n1",
        "hostname": "h1",
        "agent": "web",
        "label_env": "prod",
        "label_team_name": "ops",
    }


def test_rule_settings_name_the_key() -> None:
    from opsfleet.common.errors import ConfigError
    from opsfleet.manager.config import load_manager_config

    with pytest.raises(ConfigError, match=r"alerts\.rules\.cpu_high\.threshold"):
        load_manager_config(None, {}, {"alerts.rules.cpu_high.threshold": 200})
    config = load_manager_config(None, {}, {"alerts.rules.cpu_high.for": "2m"})
    assert config.alerts.rules.cpu_high.for_ == 120.0
