"""SimConfig validation and the flags of ``opsfleet simulate``."""

from __future__ import annotations

import pytest

from opsfleet.cli import build_parser
from opsfleet.common.errors import ConfigError
from opsfleet.simulator.cli import config_from_args
from opsfleet.simulator.config import Mode, SimConfig, shard, split_evenly


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"target": "nohost"}, "--target"),
        ({"nodes": 0}, "--nodes"),
        ({"heartbeat_interval": 0}, "--heartbeat-interval"),
        ({"metrics_interval": -1}, "--metrics-interval"),
        ({"duration": 0}, "--duration"),
        ({"workers": 0}, "--workers"),
        ({"channels": 0}, "--channels"),
        ({"inflight": 0}, "--inflight"),
        ({"jitter": 1.0}, "--jitter"),
        ({"backoff_base": 2.0, "backoff_cap": 1.0}, "--backoff-cap"),
        ({"node_prefix": "bad prefix"}, "--node-prefix"),
        ({"manager_pid": 0}, "--manager-pid"),
    ],
)
def test_invalid_values_name_their_flag(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        SimConfig(**kwargs)  # type: ignore[arg-type]


def test_call_weights_are_fleet_proportions() -> None:
    hb, metrics, sync = SimConfig().call_weights()
    assert hb / metrics == pytest.approx(6.0)
    assert sync / metrics == pytest.approx(0.2)
    assert SimConfig(metrics_interval=0, sync_interval=0).call_weights()[1:] == (0.0, 0.0)


def test_shards_cover_every_node_once() -> None:
    for nodes, workers in ((10, 3), (7, 7), (1000, 4)):
        seen = [i for w in range(workers) for i in shard(nodes, workers, w)]
        assert sorted(seen) == list(range(nodes))
    assert [split_evenly(10, 3, i) for i in range(3)] == [4, 3, 3]
    assert SimConfig(nodes=2, workers=8).effective_workers == 2
    assert SimConfig(node_prefix="edge-").node_id(42) == "edge-000042"


def test_flags_become_a_config() -> None:
    args = build_parser().parse_args(
        [
            "simulate",
            "--target=10.0.0.1:9090",
            "--nodes=20000",
            "--heartbeat-interval=10s",
            "--metrics-interval=1m",
            "--sync-interval=0",
            "--duration=5m",
            "--workers=3",
            "--mode=saturate",
            "--inflight=32",
            "--stagger=500ms",
            "--tls-ca=/ca.pem",
            "--manager-pid=42",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.target == "10.0.0.1:9090"
    assert cfg.nodes == 20000
    assert (cfg.heartbeat_interval, cfg.metrics_interval, cfg.sync_interval) == (10.0, 60.0, 0.0)
    assert cfg.duration == 300.0
    assert cfg.mode is Mode.SATURATE
    assert cfg.stagger == 0.5
    assert cfg.tls is not None and cfg.tls.ca_file == "/ca.pem"
    assert cfg.manager_pid == 42
    assert args.handler is not None


def test_every_flag_is_explained() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    simulate = sub.choices["simulate"]  # type: ignore[index]
    for action in simulate._actions:
        assert action.help, action.option_strings


def test_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--duration=soon"])
    assert "--duration" in capsys.readouterr().err
