"""Replicas tell each other about changes their caches hold (PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import pytest

from opsfleet.manager.store.changes_pg import PgChanges
from tests.helpers import assert_eventually

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

COHERENCE_BOUND = 2.0


async def test_feed_delivers_to_others_not_to_itself(database_url: str) -> None:
    a, b = PgChanges(database_url, retry_interval=0.2), PgChanges(database_url, retry_interval=0.2)
    got: dict[str, list[str]] = {"a": [], "b": []}

    async def on_a(key: str) -> None:
        got["a"].append(key)

    async def on_b(key: str) -> None:
        got["b"].append(key)

    a.subscribe("kind", on_a)
    b.subscribe("kind", on_b)
    await a.start()
    await b.start()
    try:
        await a.publish("kind", "k1")
        await a.publish("other", "ignored")
        await b.publish("kind", "k2")
        await assert_eventually(lambda: got == {"a": ["k2"], "b": ["k1"]}, timeout=COHERENCE_BOUND)
    finally:
        await a.stop()
        await b.stop()
    await a.publish("kind", "after stop")  # logged, never raised
