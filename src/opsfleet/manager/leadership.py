"""Which Manager replica runs the singleton work.

Several Manager replicas may share one PostgreSQL database. Work that must run once per
fleet (offline detection, retention, rollout runners, version pins) runs only on the
elected leader; everything else (gRPC, REST, heartbeats, metric ingest, agent operations)
runs on every replica. On SQLite there is one Manager and it is always the leader
(:class:`AlwaysLeader`); on PostgreSQL the leader holds an advisory lock on a dedicated
connection (:mod:`opsfleet.manager.store.leader_pg`).

Contract: ``is_leader`` may change at any time after ``start()``; listeners run on the
event loop right after each change (True when elected, False when leadership is lost or
given up); after ``stop()`` returns ``is_leader`` is False and no listener runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

LeaderListener = Callable[[bool], None]


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def kind(self) -> str:
        """How the leader is chosen: ``single`` (SQLite) or ``advisory-lock`` (PostgreSQL)."""
        ...

    def add_listener(self, listener: LeaderListener) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ListenerSet:
    """Listeners of leadership changes; a failing listener is logged, the others still run."""

    def __init__(self) -> None:
        self._listeners: list[LeaderListener] = []

    def add(self, listener: LeaderListener) -> None:
        self._listeners.append(listener)

    def notify(self, leader: bool) -> None:
        for listener in self._listeners:
            try:
                listener(leader)
            except Exception:
                log.exception("leadership listener failed")


class AlwaysLeader:
    """The single Manager of a SQLite database: leader from ``start()`` to ``stop()``."""

    kind = "single"

    def __init__(self) -> None:
        self._leader = False
        self._listeners = ListenerSet()

    @property
    def is_leader(self) -> bool:
        return self._leader

    def add_listener(self, listener: LeaderListener) -> None:
        self._listeners.add(listener)

    async def start(self) -> None:
        self._leader = True
        log.info("leadership: single Manager (SQLite), this replica is the leader")
        self._listeners.notify(True)

    async def stop(self) -> None:
        if self._leader:
            self._leader = False
            self._listeners.notify(False)
