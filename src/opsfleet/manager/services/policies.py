"""Policies: write (validated, conflict-checked, versioned), read, diff, roll back, delete.

Every write stores a new immutable revision (or, for a rollback, makes an old one current
again) and then hands the new set of current revisions to the :class:`ConfigService`,
which recomputes each node's effective config in memory. Writes in one process are
serialised; ``refresh()`` (run every ``refresh_interval`` by the owned loop) picks up
writes made through another Manager replica sharing the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsfleet.common.errors import InvalidArgument, NotFound
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.manager.changes import POLICIES_CHANGED, Publish, publish_nowhere
from opsfleet.manager.domain import PolicyRevision, PolicyRow
from opsfleet.manager.services.configs import ActivePolicy, ConfigService
from opsfleet.manager.services.policy_doc import (
    POLICY_NAME_RE,
    PolicyDoc,
    check_conflicts,
    parse_policy,
    unified_diff,
)
from opsfleet.manager.store.base import PolicyStore

log = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL = 5.0
DEFAULT_ROLLOUT_NODE_TIMEOUT = 600.0


class PolicyNotFound(NotFound):
    """No such policy (or revision)."""


@dataclass(frozen=True)
class PolicyChange:
    """The outcome of a write: the policy's current revision and the diff it made."""

    row: PolicyRow
    diff: str
    changed: bool


def document_of(revision: PolicyRevision) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(revision.document)
    return doc


def doc_of(revision: PolicyRevision) -> PolicyDoc:
    return parse_policy(document_of(revision))


class PolicyService:
    def __init__(
        self,
        store: PolicyStore,
        configs: ConfigService,
        *,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        rollout_node_timeout: float = DEFAULT_ROLLOUT_NODE_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._configs = configs
        self._refresh_interval = refresh_interval
        self._rollout_node_timeout = rollout_node_timeout
        self._clock = clock
        self._rows: dict[str, PolicyRow] = {}
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("policies")
        self.publish: Publish = publish_nowhere
        """Tells the other Manager replicas (opsfleet.manager.changes); set by the app."""

    async def start(self) -> None:
        self._rows = {row.name: row for row in await self._store.load_policies()}
        await self._configs.start(self._active())
        self._tasks.spawn("policy-refresh", self._refresh_loop())

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop()

    # -- reads -------------------------------------------------------------------------------

    def current(self) -> list[PolicyRow]:
        """Current (undeleted) policies by name."""
        return [row for row in self._rows.values() if not row.deleted]

    def get(self, name: str) -> PolicyRow:
        row = self._rows.get(name)
        if row is None or row.deleted:
            raise PolicyNotFound(f"no policy {name!r}")
        return row

    async def revisions(self, name: str) -> list[PolicyRevision]:
        self._check_name(name)
        found = await self._store.list_revisions(name)
        if not found:
            raise PolicyNotFound(f"no policy {name!r}")
        return found

    async def revision(self, name: str, number: int) -> PolicyRevision:
        for rev in await self.revisions(name):
            if rev.revision == number:
                return rev
        raise PolicyNotFound(f"policy {name!r} has no revision {number}")

    async def diff(self, name: str, old: int, new: int) -> str:
        a = await self.revision(name, old)
        b = await self.revision(name, new)
        return unified_diff(document_of(a), document_of(b), f"{name}@{old}", f"{name}@{new}")

    def status(self, name: str) -> dict[str, Any]:
        row = self.get(name)
        nodes = self._configs.policy_nodes(name)
        counts = {"applied": 0, "failed": 0, "pending": 0, "applying": 0}
        for node in nodes:
            counts[node["state"]] = counts.get(node["state"], 0) + 1
        return {
            "name": name,
            "revision": row.current.revision,
            "hash": row.current.hash,
            "nodes": nodes,
            "counts": counts,
            "rollout": self._configs.rollout_view(name),
            "rollout_paused": row.rollout_paused,
        }

    # -- writes ------------------------------------------------------------------------------

    async def apply(self, raw: Any, author: str) -> PolicyChange:
        """Create or update a policy from its document; unchanged documents make no revision."""
        doc = parse_policy(raw)
        async with self._lock:
            current = self._rows.get(doc.name)
            check_conflicts(doc, [p.doc for p in self._active() if p.doc.name != doc.name])
            old = None if current is None or current.deleted else document_of(current.current)
            if current is not None and not current.deleted and current.current.hash == doc.hash:
                return PolicyChange(current, "", False)
            document = json.dumps(doc.as_dict(), sort_keys=True, separators=(",", ":"))
            number = await self._store.add_revision(doc.name, document, doc.hash, author, self._clock())
            await self._reload(changed=doc.name)
            row = self._rows[doc.name]
        log.info("policy %s: revision %d (%s) by %s", doc.name, number, doc.hash[:12], author or "-")
        diff = unified_diff(old, doc.as_dict(), _label(doc.name, current), f"{doc.name}@{number}")
        return PolicyChange(row, diff, True)

    async def rollback(self, name: str, revision: int, author: str) -> PolicyChange:
        """Make an old revision current again (conflicts are checked as for a write)."""
        target = await self.revision(name, revision)
        doc = doc_of(target)
        async with self._lock:
            current = self._rows.get(name)
            check_conflicts(doc, [p.doc for p in self._active() if p.doc.name != name])
            old = None if current is None or current.deleted else document_of(current.current)
            await self._store.set_current(name, revision, self._clock())
            await self._reload(changed=name)
            row = self._rows[name]
        log.info("policy %s: rolled back to revision %d by %s", name, revision, author or "-")
        diff = unified_diff(old, doc.as_dict(), _label(name, current), f"{name}@{revision}")
        return PolicyChange(row, diff, True)

    async def delete(self, name: str, author: str) -> PolicyChange:
        """Stop handing the policy to nodes; its revisions are kept."""
        self._check_name(name)
        async with self._lock:
            row = self.get(name)
            if not await self._store.mark_deleted(name, self._clock()):
                raise PolicyNotFound(f"no policy {name!r}")
            await self._reload(changed=name)
        log.info("policy %s deleted by %s", name, author or "-")
        diff = unified_diff(document_of(row.current), None, _label(name, row), "deleted")
        return PolicyChange(row, diff, True)

    async def resume(self, name: str) -> PolicyRow:
        """Resume a halted rollout."""
        async with self._lock:
            self.get(name)
            await self._store.set_paused(name, False, self._clock())
            self._configs.resume(name)
            self._rows = {row.name: row for row in await self._store.load_policies()}
            await self.publish(POLICIES_CHANGED, name)
            return self._rows[name]

    async def refresh(self) -> bool:
        """Pick up writes of other replicas; True when something changed."""
        async with self._lock:
            rows = {row.name: row for row in await self._store.load_policies()}
            if _signature(rows) == _signature(self._rows):
                return False
            self._rows = rows
            self._configs.set_policies(self._active())
            return True

    # -- internals ---------------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        if not POLICY_NAME_RE.fullmatch(name):
            raise InvalidArgument(f"malformed policy name {name[:80]!r}")

    def _active(self) -> list[ActivePolicy]:
        return [
            ActivePolicy(doc_of(row.current), row.current.revision, row.current.hash, row.rollout_paused)
            for row in self._rows.values()
            if not row.deleted
        ]

    async def _reload(self, *, changed: str) -> None:
        self._rows = {row.name: row for row in await self._store.load_policies()}
        self._configs.set_policies(self._active(), changed=changed)
        await self.publish(POLICIES_CHANGED, changed)

    async def _refresh_loop(self) -> None:
        while not await sleep_or_stop(self._stop, self._refresh_interval):
            try:
                await self.refresh()
                self._configs.expire_rollouts(self._rollout_node_timeout)
            except Exception:
                log.exception("policy refresh failed; will retry")


def _signature(rows: dict[str, PolicyRow]) -> set[tuple[str, int, bool, bool]]:
    return {(r.name, r.current.revision, r.deleted, r.rollout_paused) for r in rows.values()}


def _label(name: str, row: PolicyRow | None) -> str:
    """How a diff names the revision it starts from."""
    if row is None or row.deleted:
        return f"{name}@none"
    return f"{name}@{row.current.revision}"
