"""AlertService with several replicas: a new leader adopts firing alerts before it evaluates."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from opsfleet.manager.alerts.model import Alert, AlertKey
from opsfleet.manager.alerts.notifier import Notifier
from opsfleet.manager.alerts.relay import ALERT_INPUTS, InputRelay, batches, decode
from opsfleet.manager.alerts.service import AlertService
from opsfleet.manager.alerts.settings import AlertsSection

NOW = 1_700_000_000.0


class SlowStore:
    """Holds one firing agent_failed alert; ``load_firing`` waits for ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.saved: list[Alert] = []
        self.stored = Alert(AlertKey("agent_failed", "n1", "fb"), "critical", "agent fb failed", NOW, id=7)

    async def save_alerts(self, batch: Sequence[Alert]) -> list[int]:
        self.saved.extend(batch)
        return [a.id or 100 + i for i, a in enumerate(batch)]

    async def save_operator(self, alert: Alert) -> None:
        return None

    async def load_firing(self) -> list[Alert]:
        await self.release.wait()
        return [self.stored]

    async def get_alert(self, alert_id: int) -> Alert | None:
        return self.stored if alert_id == 7 else None

    async def list_alerts(
        self, offset: int, limit: int, *, state: str = "", node_id: str = "", rule: str = ""
    ) -> tuple[list[Alert], int]:
        return [self.stored], 1


async def test_inputs_wait_until_the_new_leader_has_loaded_the_firing_alerts() -> None:
    published: list[tuple[str, str]] = []

    async def publish(kind: str, key: str) -> None:
        published.append((kind, key))

    settings = AlertsSection.model_validate({"evaluation_interval": 0.05})
    store = SlowStore()
    leader = False
    service = AlertService(
        settings,
        store,
        Notifier(settings, base_url=lambda: "", firing=list, clock=lambda: NOW, registry=CollectorRegistry()),
        lookup=lambda _node: asyncio.sleep(0, None),
        clock=lambda: NOW,
        relay=InputRelay(publish),
        is_leader=lambda: leader,
    )
    await service.start()
    try:
        # A follower forwards, evaluates nothing.
        service.agents_synced("n1", [("fb", "error", 10)])
        await asyncio.sleep(0)
        assert service.firing_count() == 0 and service.transitions == 0
        assert [kind for kind, _ in published] == [ALERT_INPUTS]
        assert decode(published[0][1]) == [["a", "n1", [["fb", "error", 10]]]]

        # Elected: the same failure arrives before the firing alerts are loaded; it is held,
        # then finds the stored alert firing and changes nothing.
        leader = True
        service.leadership_changed(True)
        service.agents_synced("n1", [("fb", "error", 10)])
        await service.inputs_forwarded(published[0][1])
        assert service.transitions == 0
        store.release.set()
        for _ in range(100):
            if service.firing_count():
                break
            await asyncio.sleep(0.01)
        assert [a.id for a in service.engine.firing()] == [7] and service.transitions == 0
        await service.flush()
        assert store.saved == []

        # Resolved through a follower's forwarded snapshot.
        await service.inputs_forwarded(batches([["a", "n1", [["fb", "running", 10]]]])[0])
        assert service.firing_count() == 0 and service.transitions == 1
    finally:
        await service.stop()
    assert [(a.id, a.state.value) for a in store.saved] == [(7, "resolved")]


def test_batches_stay_under_the_payload_limit() -> None:
    events = [["u", f"node-{i:05d}", "cpu", 99.5] for i in range(2000)]
    payloads = batches(events)
    assert 1 < len(payloads) < 20
    assert all(len(p) <= 7000 for p in payloads)
    assert [e for p in payloads for e in decode(p)] == events
    assert batches([["c", "n1", "failed", "x" * 9000]]) == []
