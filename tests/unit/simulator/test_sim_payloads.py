"""Metric payloads carry every key of the wire contract (PROTOCOL.md section 3), sensibly."""

from __future__ import annotations

import math
import random

from opsfleet.common.validation import NODE_ID_RE, check_metric_type
from opsfleet.simulator.payloads import AGENT_TYPES, AgentSet, MachineModel, identity_for
from tests.helpers import CONTRACT_METRIC_KEYS

CUMULATIVE = {
    "cpu": ("user", "system", "idle", "iowait"),
    "disk": ("read_bytes", "write_bytes"),
    "network": ("bytes_recv", "bytes_sent", "packets_recv", "packets_sent", "error_in", "drop_in"),
}


def test_every_sample_has_every_key_and_finite_values() -> None:
    for seed in range(20):
        model = MachineModel(random.Random(seed), now=1_000.0)
        for step in range(1, 6):
            sample = model.sample(1_000.0 + 60 * step)
            assert set(sample) == set(CONTRACT_METRIC_KEYS)
            for type_, values in sample.items():
                check_metric_type(type_)
                assert set(values) == CONTRACT_METRIC_KEYS[type_], type_
                assert all(isinstance(v, float | int) and math.isfinite(v) for v in values.values())


def test_values_are_plausible() -> None:
    model = MachineModel(random.Random(7), now=0.0)
    for step in range(1, 50):
        s = model.sample(60.0 * step)
        for type_ in ("cpu", "memory", "disk"):
            assert 0.0 <= s[type_]["usage_percent"] <= 100.0
        mem = s["memory"]
        assert mem["used_bytes"] + mem["available_bytes"] == mem["total_bytes"]
        assert 0 <= mem["free_bytes"] <= mem["available_bytes"]
        assert mem["swap_used"] + mem["swap_free"] == mem["swap_total"]
        disk = s["disk"]
        assert disk["used_bytes"] + disk["free_bytes"] == disk["total_bytes"]
        assert s["cpu"]["cores"] >= 1
        assert s["network"]["interval_seconds"] == 60.0


def test_counters_only_grow_and_deltas_match_them() -> None:
    model = MachineModel(random.Random(3), now=0.0)
    previous = model.sample(10.0)
    for step in range(2, 30):
        current = model.sample(10.0 * step)
        for type_, keys in CUMULATIVE.items():
            for key in keys:
                assert current[type_][key] >= previous[type_][key], (type_, key)
        net_now, net_before = current["network"], previous["network"]
        assert net_now["bytes_recv"] - net_before["bytes_recv"] == net_now["rx_bytes"]
        assert net_now["bytes_sent"] - net_before["bytes_sent"] == net_now["tx_bytes"]
        previous = current


def test_identity_is_acceptable_to_the_manager() -> None:
    rand = random.Random(1)
    ids = set()
    for index in (0, 1, 255, 256, 70_000):
        ident = identity_for(f"sim-{index:06d}", index, rand)
        assert NODE_ID_RE.fullmatch(ident.node_id)
        assert ident.hostname.startswith(ident.node_id)
        assert all(0 <= int(part) <= 255 for part in ident.ip.split("."))
        ids.add(ident.ip)
    assert len(ids) == 5


def test_agent_states() -> None:
    agents = AgentSet(5, random.Random(2))
    states = agents.states(now=123)
    assert [s.agent_id for s in states] == [s.agent_id for s in agents.states(now=124)]
    assert len({s.agent_id for s in states}) == 5
    assert {s.type for s in states} <= set(AGENT_TYPES)
    assert all(s.status in {"running", "starting"} and s.last_heartbeat == 123 and s.pid > 0 for s in states)
    assert AgentSet(0, random.Random(2)).states(now=1) == []
