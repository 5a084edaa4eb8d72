"""Rule inputs a follower replica forwards to the leader, which alone evaluates the rules.

With several Manager replicas (PostgreSQL), a node's data reaches whichever replica its
daemon talks to, but one replica (the leader) owns the alert state and sends the
notifications. A follower turns each rule input into a compact event and publishes it on
the change feed (:mod:`opsfleet.manager.changes`, kind :data:`ALERT_INPUTS`); the events
queued meanwhile go out together, as few notifications as fit :data:`MAX_PAYLOAD`. The
leader decodes them and feeds its engine exactly as if it had received the data itself.

Events are JSON lists, the first item says which input:

- ``["s", node, online]``: liveness transition;
- ``["a", node, [[agent, status, pid], ...]]``: a full agent snapshot;
- ``["u", node, type, usage_percent]``: the newest usage of a cpu / memory / disk sample;
- ``["c", node, state, error]``: a central-config report;
- ``["o", node, component, state, message]``: an update outcome;
- ``["f", node]``: the node was deleted.

Lifecycle: ``start()`` spawns the publisher; ``stop()`` publishes what is queued and ends it.
A notification lost while the feed is disconnected is lost (the next report of the node
carries its current state again).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from opsfleet.common.lifecycle import TaskOwner
from opsfleet.manager.changes import Publish

log = logging.getLogger(__name__)

ALERT_INPUTS = "alert-inputs"  # key: a JSON list of events
ALERT_OPERATOR = "alert-operator"  # key: alert id (acknowledged or silenced through a follower)
MAX_PAYLOAD = 7000  # bytes of one notification's key once JSON-quoted (PostgreSQL allows 8000 in all)
MAX_TEXT = 500  # characters kept of an error or message

Event = list[Any]


def text(value: str) -> str:
    return value[:MAX_TEXT]


def batches(events: list[Event]) -> list[str]:
    """The events as JSON arrays of at most MAX_PAYLOAD bytes each (quoted); an event too large
    alone is dropped with a warning."""
    out: list[str] = []
    parts: list[str] = []
    size = 2
    for event in events:
        encoded = json.dumps(event, separators=(",", ":"))
        cost = len(json.dumps(encoded)) - 1  # quoting doubles some characters
        if cost + 2 > MAX_PAYLOAD:
            log.warning("alerts: not forwarding a %s event of node %s (too large)", event[0], event[1])
            continue
        if parts and size + cost > MAX_PAYLOAD:
            out.append("[" + ",".join(parts) + "]")
            parts, size = [], 2
        parts.append(encoded)
        size += cost
    if parts:
        out.append("[" + ",".join(parts) + "]")
    return out


def decode(payload: str) -> list[Event]:
    try:
        events = json.loads(payload)
    except ValueError:
        events = None
    if not isinstance(events, list):
        log.warning("alerts: ignoring malformed forwarded inputs %r", payload[:200])
        return []
    return [e for e in events if isinstance(e, list) and len(e) >= 2 and isinstance(e[1], str)]


class InputRelay:
    """The follower's side: queue events, publish them in batches from one task."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._queue: list[Event] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks = TaskOwner("alert-relay")
        self.published = 0

    def add(self, event: Event) -> None:
        self._queue.append(event)
        self._wake.set()

    async def start(self) -> None:
        self._tasks.spawn("publisher", self._loop())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await self._tasks.stop()
        await self.flush()

    async def tell(self, kind: str, key: str) -> None:
        """Publish one change at once (never raises)."""
        await self._publish(kind, key)

    async def flush(self) -> None:
        events, self._queue = self._queue, []
        for payload in batches(events):
            await self._publish(ALERT_INPUTS, payload)
            self.published += 1

    async def _loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            await self.flush()
