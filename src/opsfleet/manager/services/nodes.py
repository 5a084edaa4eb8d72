"""Node registration, heartbeats and liveness.

Heartbeats only update an in-memory map; a flusher writes it to the store in bulk at
least every ``flush_interval`` seconds. The liveness loop marks nodes offline after
``offline_after`` of silence, but never during the first ``offline_after`` after start,
so a manager restart does not declare the fleet offline.

With several Manager replicas on one database every replica flushes the heartbeats it
receives, and only the elected one (``is_leader``) marks nodes offline, from the
``last_seen_at`` stored in the database; the conditional update makes a silent node go
offline once, with one offline event. A node that comes back through another replica is
reported online by that replica; the leader also looks again at the nodes ``watch_offline``
names (those with a firing offline alert) and reports those found online.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from opsfleet.common.errors import InvalidArgument, NotFound
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.validation import check_node_id, check_registration_fields
from opsfleet.manager.domain import Node, NodeEvent, NodeRegistration, NodeStatus
from opsfleet.manager.services.batching import GroupCommitter
from opsfleet.manager.store.base import Store

log = logging.getLogger(__name__)

MAX_RECHECK = 500  # watched offline nodes looked at again per liveness pass


class NodeNotFound(NotFound):
    """The node is not registered (the REST API answers code 2001)."""


class NodeService:
    def __init__(
        self,
        store: Store,
        *,
        offline_after: float,
        check_interval: float = 5.0,
        flush_interval: float = 1.0,
        max_queued_registrations: int = 20_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._offline_after = offline_after
        self._check_interval = min(check_interval, offline_after / 2)
        self._flush_interval = flush_interval
        self._clock = clock
        self._known: set[str] = set()
        self._pending: dict[str, float] = {}
        self._flush_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("nodes")
        self._registrations: GroupCommitter[NodeRegistration, bool] = GroupCommitter(
            "registrations", self._upsert, max_batch=500, max_queued=max_queued_registrations
        )
        self._started_at = clock()
        self.heartbeats_flushed = 0
        self._forget_listeners: list[Callable[[str], None]] = []
        self._register_listeners: list[Callable[[str, dict[str, str]], None]] = []
        self._status_listeners: list[Callable[[str, bool], None]] = []
        self.is_leader: Callable[[], bool] = lambda: True
        self.watch_offline: Callable[[], Iterable[str]] = lambda: ()

    def add_forget_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(node_id)`` runs when a node is deleted or registers anew (caches drop it)."""
        self._forget_listeners.append(listener)

    def add_register_listener(self, listener: Callable[[str, dict[str, str]], None]) -> None:
        """``listener(node_id, labels)`` runs after every (re-)registration."""
        self._register_listeners.append(listener)

    def add_status_listener(self, listener: Callable[[str, bool], None]) -> None:
        """``listener(node_id, online)`` runs when liveness marks a node offline or a heartbeat
        brings it back online."""
        self._status_listeners.append(listener)

    def _status_changed(self, node_id: str, online: bool) -> None:
        for listener in self._status_listeners:
            listener(node_id, online)

    async def start(self) -> None:
        self._started_at = self._clock()
        self._known = {n.node_id for n in await self._store.list_nodes()}
        await self._registrations.start()
        self._tasks.spawn("heartbeat-flusher", self._flush_loop())
        self._tasks.spawn("liveness", self._liveness_loop())

    async def stop(self) -> None:
        """Stop the loops and write pending heartbeats; idempotent."""
        self._stop.set()
        await self._registrations.stop()
        await self._tasks.stop()
        await self.flush()

    async def register(self, reg: NodeRegistration) -> bool:
        """Idempotent upsert of the node (group-committed with concurrent registrations); True when new."""
        check_node_id(reg.node_id)
        check_registration_fields(
            reg.hostname,
            {
                "ip": reg.ip,
                "os": reg.os,
                "arch": reg.arch,
                "daemon_version": reg.daemon_version,
                "agent_version": reg.agent_version,
                "daemon_address": reg.daemon_address,
            },
            reg.labels,
        )
        self._pending.pop(reg.node_id, None)
        created = await self._registrations.submit(reg)
        self._known.add(reg.node_id)
        if created:
            for listener in self._forget_listeners:
                listener(reg.node_id)
            log.info("node %s registered (hostname=%r ip=%r)", reg.node_id, reg.hostname, reg.ip)
        else:
            # At DEBUG: after a manager restart a whole fleet re-registers within a minute.
            log.debug("node %s re-registered (hostname=%r ip=%r)", reg.node_id, reg.hostname, reg.ip)
        for on_register in self._register_listeners:
            on_register(reg.node_id, reg.labels)
        return created

    async def _upsert(self, regs: Sequence[NodeRegistration]) -> list[bool]:
        return await self._store.upsert_nodes(regs, self._clock())

    async def register_assigned(self, reg: NodeRegistration) -> tuple[str, bool]:
        """Registration where the manager picks the id: the same hostname and ip keep their id."""
        check_registration_fields(reg.hostname, {"ip": reg.ip}, reg.labels)
        node_id = await self._store.find_node_id(reg.hostname, reg.ip) or str(uuid.uuid4())
        created = await self.register(
            NodeRegistration(
                node_id=node_id,
                hostname=reg.hostname,
                ip=reg.ip,
                os=reg.os,
                arch=reg.arch,
                labels=reg.labels,
                daemon_version=reg.daemon_version,
                agent_version=reg.agent_version,
                daemon_address=reg.daemon_address,
            )
        )
        return node_id, created

    async def ensure_known(self, node_id: str) -> None:
        """NotFound unless the node is registered (the manager never invents nodes)."""
        check_node_id(node_id)
        if node_id in self._known:
            return
        if await self._store.get_node(node_id) is None:
            raise NodeNotFound(f"node {node_id} is not registered")
        self._known.add(node_id)

    async def heartbeat(self, node_id: str) -> None:
        await self.ensure_known(node_id)
        self.seen(node_id)

    def seen(self, node_id: str) -> None:
        """Note that the node was heard from now (flushed in bulk)."""
        self._pending[node_id] = self._clock()

    def forget(self, node_id: str) -> None:
        self._known.discard(node_id)
        self._pending.pop(node_id, None)
        for listener in self._forget_listeners:
            listener(node_id)

    async def get(self, node_id: str) -> Node:
        check_node_id(node_id)
        node = await self._store.get_node(node_id)
        if node is None:
            raise NodeNotFound(f"node {node_id} is not registered")
        return node

    async def find(self, node_id: str) -> Node | None:
        """The node with exactly this id, or None (also for text that cannot be an id)."""
        try:
            check_node_id(node_id)
        except InvalidArgument:
            return None
        return await self._store.get_node(node_id)

    async def list_all(self) -> list[Node]:
        return await self._store.list_nodes()

    async def events(self, node_id: str, limit: int = 100) -> list[NodeEvent]:
        await self.get(node_id)
        return await self._store.list_events(node_id, limit)

    async def flush(self) -> int:
        """Write pending heartbeats in one transaction; the number of nodes written."""
        async with self._flush_lock:
            if not self._pending:
                return 0
            batch, self._pending = self._pending, {}
            try:
                back, missing = await self._store.touch_nodes(batch)
            except Exception:
                for node_id, seen in batch.items():
                    self._pending.setdefault(node_id, seen)
                raise
        for node_id in back:
            log.info("node %s online (heartbeat)", node_id)
            self._status_changed(node_id, True)
        for node_id in missing:
            # Deleted (perhaps through another replica): the next call gets NOT_FOUND.
            self.forget(node_id)
        self.heartbeats_flushed += len(batch)
        return len(batch)

    async def check_liveness(self) -> list[str]:
        """Mark silent nodes offline (not within ``offline_after`` of start); their ids."""
        now = self._clock()
        if now - self._started_at < self._offline_after or not self.is_leader():
            return []
        await self.flush()
        gone = await self._store.mark_offline(now - self._offline_after, now)
        for node_id in gone:
            log.info("node %s offline (silent for %.0fs)", node_id, self._offline_after)
            self._status_changed(node_id, False)
        await self._recheck_offline(set(gone))
        return gone

    async def _recheck_offline(self, just_gone: set[str]) -> None:
        """Report online the watched nodes that came back through another replica."""
        watched = [n for n in self.watch_offline() if n not in just_gone][:MAX_RECHECK]
        for node_id in watched:
            node = await self._store.get_node(node_id)
            if node is not None and node.status is NodeStatus.ONLINE:
                log.info("node %s online (heartbeat through another replica)", node_id)
                self._status_changed(node_id, True)

    async def _flush_loop(self) -> None:
        while not await sleep_or_stop(self._stop, self._flush_interval):
            try:
                await self.flush()
            except Exception:
                log.exception("heartbeat flush failed; will retry")

    async def _liveness_loop(self) -> None:
        while not await sleep_or_stop(self._stop, self._check_interval):
            try:
                await self.check_liveness()
            except Exception:
                log.exception("liveness check failed; will retry")
