"""Collectors: the PROTOCOL.md section 3 keys on the real machine, and the arithmetic on fed counters."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest

from opsfleet.common.errors import ConfigError
from opsfleet.daemon.collectors import (
    COLLECTOR_NAMES,
    CpuCollector,
    DiskCollector,
    FakeCollector,
    MemoryCollector,
    NetworkCollector,
    make_collector,
)
from opsfleet.daemon.collectors.disk import IoTotals, Partition, Usage
from tests.helpers import CONTRACT_METRIC_KEYS

# -- real psutil on this machine ------------------------------------------------------------


@pytest.mark.parametrize("name", COLLECTOR_NAMES)
def test_real_collector_has_every_key_as_float(name: str) -> None:
    collector = make_collector(name)
    assert collector.name == name
    for values in (collector.collect(), collector.collect()):
        assert CONTRACT_METRIC_KEYS[name] <= values.keys()
        assert all(type(v) is float for v in values.values()), values


def test_real_cpu_usage_is_a_percentage() -> None:
    collector = CpuCollector()
    for _ in range(3):
        values = collector.collect()
        assert 0.0 <= values["usage_percent"] <= 100.0
    assert values["cores"] >= 1.0
    assert values["idle"] > 0.0


def test_real_memory_is_consistent() -> None:
    values = MemoryCollector().collect()
    assert values["total_bytes"] > 0
    assert 0.0 <= values["usage_percent"] <= 100.0
    assert values["available_bytes"] <= values["total_bytes"]


def test_real_disk_skips_a_nonexistent_mount_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    collector = DiskCollector(mount_points=["/", "/no/such/mount-point", "/"])
    with caplog.at_level(logging.WARNING):
        first = collector.collect()
        second = collector.collect()
    assert first["partition_count"] == second["partition_count"] == 1.0
    assert first["total_bytes"] > 0
    assert first["usage_percent"] == pytest.approx(first["used_bytes"] / first["total_bytes"] * 100)
    assert sum("/no/such/mount-point" in r.getMessage() for r in caplog.records) == 1


def test_real_network_excludes_loopback_by_default() -> None:
    only_lo = NetworkCollector(interfaces=["lo"]).collect()
    assert only_lo["interface_count"] == 1.0
    default = NetworkCollector()
    default.collect()
    values = default.collect()
    assert values["rx_bytes"] >= 0.0
    assert values["tx_bytes"] >= 0.0
    assert values["interval_seconds"] >= 0.0


def test_make_collector_rejects_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match="gpu"):
        make_collector("gpu")


def test_fake_collector_returns_copies() -> None:
    fake = FakeCollector("cpu", {"usage_percent": 5.0})
    fake.collect()["usage_percent"] = 99.0
    assert fake.collect() == {"usage_percent": 5.0}
    assert fake.calls == 2


# -- fed counters ----------------------------------------------------------------------------


def test_cpu_usage_from_fed_times() -> None:
    samples = iter(
        [
            {"user": 10.0, "system": 5.0, "idle": 80.0, "iowait": 5.0, "guest": 3.0},
            {"user": 16.0, "system": 7.0, "idle": 110.0, "iowait": 7.0, "guest": 9.0},
            {"user": 16.0, "system": 7.0, "idle": 110.0, "iowait": 7.0, "guest": 9.0},
        ]
    )
    collector = CpuCollector(cpu_times=lambda: next(samples), cores=lambda: None, mhz=lambda: None)
    values = collector.collect()
    # busy +8 of total +40 (guest is already inside user and is not counted twice)
    assert values["usage_percent"] == pytest.approx(20.0)
    assert (values["cores"], values["mhz"], values["user"], values["iowait"]) == (0.0, 0.0, 16.0, 7.0)
    assert collector.collect()["usage_percent"] == 0.0  # no time elapsed


def test_cpu_without_iowait_reports_zero() -> None:
    collector = CpuCollector(
        cpu_times=lambda: {"user": 1.0, "system": 1.0, "idle": 1.0}, cores=lambda: 4, mhz=lambda: 2400.5
    )
    values = collector.collect()
    assert values["iowait"] == 0.0
    assert values["cores"] == 4.0
    assert values["mhz"] == 2400.5


def test_memory_from_fed_stats_without_linux_fields() -> None:
    collector = MemoryCollector(
        virtual_memory=lambda: {"total": 100, "available": 40, "percent": 60.0, "used": 55, "free": 5},
        swap_memory=lambda: {"total": 10, "used": 1, "free": 9, "percent": 10.0},
    )
    values = collector.collect()
    assert values["cached"] == values["buffers"] == 0.0
    assert values["usage_percent"] == 60.0
    assert values["swap_free"] == 9.0
    assert all(type(v) is float for v in values.values())


def test_disk_all_partitions_deduplicated_by_device() -> None:
    usages = {"/": Usage(100, 30, 70), "/bind": Usage(100, 30, 70), "/data": Usage(300, 90, 210)}
    collector = DiskCollector(
        partitions=lambda: [
            Partition("/dev/a", "/"),
            Partition("/dev/a", "/bind"),
            Partition("/dev/b", "/data"),
        ],
        usage=lambda path: usages[path],
        io_counters=lambda: None,
    )
    values = collector.collect()
    assert values["partition_count"] == 2.0
    assert values["total_bytes"] == 400.0
    assert values["used_bytes"] == 120.0
    assert values["usage_percent"] == pytest.approx(30.0)
    assert values["read_bytes"] == values["write_bytes"] == 0.0


def test_disk_missing_mount_reappears() -> None:
    present: set[str] = set()

    def usage(path: str) -> Usage:
        if path not in present:
            raise FileNotFoundError(path)
        return Usage(10, 5, 5)

    collector = DiskCollector(mount_points=["/mnt/x"], usage=usage, io_counters=lambda: IoTotals(7, 9))
    empty = collector.collect()
    assert empty["partition_count"] == 0.0
    assert empty["usage_percent"] == 0.0
    present.add("/mnt/x")
    values = collector.collect()
    assert values["partition_count"] == 1.0
    assert (values["read_bytes"], values["write_bytes"]) == (7.0, 9.0)


def _nic(recv: float, sent: float, **extra: float) -> dict[str, float]:
    return {"bytes_recv": recv, "bytes_sent": sent, "packets_recv": 1, "packets_sent": 2, **extra}


class _Feed:
    """Counters and a clock set by the test before each collect()."""

    def __init__(self) -> None:
        self.nics: Mapping[str, Mapping[str, float]] = {}
        self.now = 100.0


def _network(feed: _Feed, interfaces: tuple[str, ...] = ()) -> NetworkCollector:
    return NetworkCollector(interfaces=interfaces, counters=lambda: feed.nics, clock=lambda: feed.now)


def test_network_deltas_from_fed_counters() -> None:
    feed = _Feed()
    collector = _network(feed)
    feed.nics = {"lo": _nic(1e6, 1e6), "eth0": _nic(1000, 500, errin=3, dropout=4), "eth1": _nic(10, 20)}
    first = collector.collect()
    assert (first["rx_bytes"], first["tx_bytes"], first["interval_seconds"]) == (0.0, 0.0, 0.0)
    assert first["bytes_recv"] == 1010.0
    assert (first["error_in"], first["drop_out"], first["error_out"]) == (3.0, 4.0, 0.0)
    assert first["interface_count"] == 2.0

    feed.nics = {"lo": _nic(2e6, 2e6), "eth0": _nic(1600, 800), "eth1": _nic(15, 20)}
    feed.now = 110.5
    second = collector.collect()
    assert (second["rx_bytes"], second["tx_bytes"]) == (605.0, 300.0)
    assert second["interval_seconds"] == 10.5


def test_network_counter_reset_gives_zero_not_negative() -> None:
    feed = _Feed()
    collector = _network(feed)
    feed.nics = {"eth0": _nic(5000, 5000), "eth1": _nic(100, 100)}
    collector.collect()
    feed.nics = {"eth0": _nic(40, 30), "eth1": _nic(150, 100)}  # eth0 was reset
    values = collector.collect()
    assert (values["rx_bytes"], values["tx_bytes"]) == (50.0, 0.0)
    feed.nics = {"eth0": _nic(140, 60), "eth1": _nic(150, 100)}
    values = collector.collect()
    assert (values["rx_bytes"], values["tx_bytes"]) == (100.0, 30.0)


def test_network_new_interface_contributes_zero_on_first_sight() -> None:
    feed = _Feed()
    collector = _network(feed)
    feed.nics = {"eth0": _nic(100, 100)}
    collector.collect()
    feed.nics = {"eth0": _nic(110, 100), "wg0": _nic(9999, 9999)}
    assert collector.collect()["rx_bytes"] == 10.0


def test_network_selected_missing_interface_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    feed = _Feed()
    feed.nics = {"lo": _nic(7, 7), "eth0": _nic(1, 1)}
    collector = _network(feed, interfaces=("lo", "tun9"))
    with caplog.at_level(logging.WARNING):
        values = collector.collect()
        collector.collect()
    assert values["interface_count"] == 1.0
    assert values["bytes_recv"] == 7.0
    assert sum("tun9" in r.getMessage() for r in caplog.records) == 1
