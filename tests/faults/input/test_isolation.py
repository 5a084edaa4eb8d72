"""One caller's bad data never fails another caller's write (group commit on PostgreSQL).

PostgreSQL refuses a NUL in text; before input rules and per-member retry, one such row in a
shared group-commit transaction failed every other caller of that batch with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from opsfleet.proto import manager_pb2
from tests.integration.manager.support import Running

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

GOOD_NODES = 20
BAD_CALLS = 100
SQL_WORDS = ("INSERT", "SELECT", "[SQL", "Traceback", "asyncpg", "sqlalchemy")


def _registration(node_id: str, hostname: str) -> manager_pb2.RegisterNodeRequest:
    return manager_pb2.RegisterNodeRequest(
        node_id=node_id,
        hostname=hostname,
        ip="10.0.0.1",
        os="linux",
        arch="amd64",
        labels={"env": "faults"},
        daemon_version="1.0",
        agent_version="1.0",
    )


def _metrics(node_id: str, ts: int, key: str = "usage_percent") -> manager_pb2.ReportMetricsRequest:
    return manager_pb2.ReportMetricsRequest(
        node_id=node_id,
        metrics=[manager_pb2.MetricData(type="cpu", timestamp=ts, values={key: 1.5, "cores": 4.0})],
    )


async def _outcome(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def _register_good(running: Running) -> list[str]:
    ids = [f"good-{i}" for i in range(GOOD_NODES)]
    for node_id in ids:
        await running.manager.RegisterNode(_registration(node_id, f"host-{node_id}"))
    return ids


def _good_traffic(running: Running, ids: list[str], rounds: int) -> list[Awaitable[Any]]:
    now = int(time.time())
    calls: list[Awaitable[Any]] = []
    for r in range(rounds):
        for node_id in ids:
            calls.append(running.manager.RegisterNode(_registration(node_id, f"host-{node_id}")))
            calls.append(running.manager.Heartbeat(manager_pb2.HeartbeatRequest(node_id=node_id)))
            calls.append(running.manager.ReportMetrics(_metrics(node_id, now - 100 + r)))
    return calls


def _assert_clean(details: str) -> None:
    for word in SQL_WORDS:
        assert word not in details, details


async def test_bad_registrations_beside_good_traffic_fail_alone(running: Running) -> None:
    ids = await _register_good(running)
    bad = [
        running.manager.RegisterNode(_registration(f"bad-{i}", f"evil\x00host-{i}")) for i in range(BAD_CALLS)
    ]
    good = _good_traffic(running, ids, rounds=3)
    results = await asyncio.gather(*(_outcome(c) for c in [*bad, *good]))
    bad_results, good_results = results[:BAD_CALLS], results[BAD_CALLS:]
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code, _ in bad_results), bad_results[:3]
    for _, details in bad_results:
        assert "hostname" in details
        _assert_clean(details)
    failed_good = [r for r in good_results if r[0] != grpc.StatusCode.OK]
    assert failed_good == [], failed_good[:5]
    stored = {n.node_id for n in await running.app.store.list_nodes()}
    assert stored == set(ids)


async def test_bad_row_that_slips_into_a_batch_fails_only_its_caller(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value only the database rejects (validation switched off) reaches a shared batch."""
    import opsfleet.manager.services.nodes as nodes_module

    ids = await _register_good(running)
    monkeypatch.setattr(nodes_module, "check_registration_fields", lambda *a, **k: None)
    bad = [running.manager.RegisterNode(_registration(f"slip-{i}", f"slip\x00{i}")) for i in range(10)]
    good = [running.manager.RegisterNode(_registration(n, f"host-{n}")) for n in ids]
    # Interleave so the bad rows share batches with good ones.
    calls = [c for pair in zip(good[:10], bad, strict=True) for c in pair] + good[10:]
    results = await asyncio.gather(*(_outcome(c) for c in calls))
    bad_results = results[1:20:2]
    good_results = results[0:20:2] + results[20:]
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code, _ in bad_results), bad_results
    for _, details in bad_results:
        _assert_clean(details)
    assert all(code == grpc.StatusCode.OK for code, _ in good_results), good_results
    events = await running.app.store.list_events("good-0")
    assert len(events) == 2  # registered, then re-registered once: committed exactly once


async def test_bad_metric_key_that_slips_into_a_batch_fails_only_its_caller(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opsfleet.manager.services.metrics as metrics_module

    ids = await _register_good(running)
    await running.manager.RegisterNode(_registration("poison", "host-poison"))
    monkeypatch.setattr(metrics_module, "check_value_keys", lambda *a, **k: None, raising=False)
    now = int(time.time())
    calls: list[Callable[[], Awaitable[Any]]] = []
    for r in range(5):
        calls.append(lambda r=r: running.manager.ReportMetrics(_metrics("poison", now - r, "bad\x00key")))
        calls.extend(lambda n=n, r=r: running.manager.ReportMetrics(_metrics(n, now - r)) for n in ids)
    results = await asyncio.gather(*(_outcome(c()) for c in calls))
    poison = [r for c, r in zip(range(len(calls)), results, strict=True) if c % (GOOD_NODES + 1) == 0]
    others = [r for c, r in zip(range(len(calls)), results, strict=True) if c % (GOOD_NODES + 1) != 0]
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code, _ in poison), poison
    assert all(code == grpc.StatusCode.OK for code, _ in others), [
        r for r in others if r[0] != grpc.StatusCode.OK
    ][:3]
    assert await running.app.store.count_metrics() == 5 * GOOD_NODES
