"""The notifier's queues: enqueue never blocks, a full queue drops and counts, retries give up
after max_attempts; Alertmanager gets API v2 alert objects (httpx MockTransport, no network)."""

from __future__ import annotations

import asyncio
import json

import httpx
from prometheus_client import CollectorRegistry

from opsfleet.manager.alerts.model import Alert, AlertKey, AlertState
from opsfleet.manager.alerts.notifier import Notifier
from opsfleet.manager.alerts.settings import AlertsSection
from tests.helpers import assert_eventually

NOW = 1_700_000_000.0


def alert(n: int = 1, *, resolved: bool = False) -> Alert:
    a = Alert(AlertKey("node_offline", f"n{n}"), "critical", "node is offline", starts_at=NOW - 60, id=n)
    if resolved:
        a.state, a.ends_at = AlertState.RESOLVED, NOW
    return a


def settings(**extra: object) -> AlertsSection:
    return AlertsSection.model_validate(
        {
            "alertmanager": {"url": "http://am.test", "resend_interval": 3600},
            "retry_base": 0.01,
            "retry_max": 0.02,
            **extra,
        }
    )


async def test_full_queue_drops_and_counts_without_blocking() -> None:
    release = asyncio.Event()
    bodies: list[list[dict[str, object]]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await release.wait()
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    registry = CollectorRegistry()
    notifier = Notifier(
        settings(queue_size=10),
        base_url=lambda: "http://manager.test",
        firing=list,
        clock=lambda: NOW,
        registry=registry,
        transport=httpx.MockTransport(handler),
    )
    await notifier.start()
    try:
        for n in range(1, 16):  # synchronous: ten fit in the queue, five are dropped at once
            notifier.enqueue(alert(n))
        assert notifier.stats[0].dropped == 5
        release.set()
        await assert_eventually(lambda: notifier.stats[0].sent == 10)
    finally:
        await notifier.stop()
    first = bodies[0][0]
    assert first["labels"] == {
        "alertname": "node_offline",
        "rule": "node_offline",
        "severity": "critical",
        "node_id": "n1",
    }
    assert first["startsAt"] == "2023-11-14T22:12:20Z"
    assert first["endsAt"] == "2023-11-15T02:13:20Z"  # firing: 4 resend intervals ahead
    assert first["generatorURL"] == "http://manager.test/#/alerts?id=1"
    assert (
        registry.get_sample_value(
            "opsfleet_alert_notifications_total", {"target": "alertmanager", "result": "dropped"}
        )
        == 5
    )


async def test_retries_then_gives_up() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return httpx.Response(503, text="down")

    notifier = Notifier(
        settings(max_attempts=3),
        base_url=lambda: "",
        firing=list,
        clock=lambda: NOW,
        transport=httpx.MockTransport(handler),
    )
    await notifier.start()
    try:
        notifier.enqueue(alert(resolved=True))
        await assert_eventually(lambda: notifier.stats[0].dropped == 1)
    finally:
        await notifier.stop()
    stats = notifier.stats[0]
    assert (attempts, stats.failures, stats.sent) == (3, 3, 0)
    assert stats.last_error == "HTTP 503: down"


async def test_stop_before_start_and_twice() -> None:
    notifier = Notifier(settings(), base_url=lambda: "", firing=list, clock=lambda: NOW)
    await notifier.stop()
    await notifier.stop()
    notifier.enqueue(alert())  # after stop: ignored
    assert notifier.stats[0].sent == 0 and notifier.stats[0].dropped == 0
