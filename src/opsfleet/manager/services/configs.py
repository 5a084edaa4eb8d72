"""Central configuration handed to daemons: effective configs, their hashes, GetConfig, reports.

Everything the hot paths need lives in memory: the labels of every node, the effective
document of each distinct set of selecting policies (hash -> YAML bytes), the hash each
node is handed in its HeartbeatResponse, and the last state each node reported. A
heartbeat costs one dict lookup and GetConfig one more; neither reads the database.
Policy changes (:meth:`ConfigService.set_policies`) and registrations recompute the
affected nodes. A policy with ``rollout`` hands its new revision to a few nodes at a time
(:mod:`opsfleet.manager.services.config_rollout`); the others keep their previous hash meanwhile.
All methods run on the event loop thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsfleet.common.central_config import content_hash, to_yaml
from opsfleet.common.errors import InvalidArgument
from opsfleet.manager.domain import CONFIG_STATES, NodeConfigState
from opsfleet.manager.services.config_rollout import Rollout
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.services.policy_doc import PolicyDoc, merge, pins
from opsfleet.manager.store.base import PolicyStore

log = logging.getLogger(__name__)

CONFIG_TYPES = ("daemon", "agent")


@dataclass(frozen=True)
class ActivePolicy:
    """The current revision of an undeleted policy."""

    doc: PolicyDoc
    revision: int
    hash: str
    rollout_paused: bool = False


@dataclass(frozen=True)
class Effective:
    """One effective central document and the policy revisions it was merged from."""

    hash: str
    data: bytes
    document: dict[str, Any]
    policies: tuple[tuple[str, int, str], ...]


EMPTY = Effective(content_hash({}), b"", {}, ())

LabelKey = tuple[tuple[str, str], ...]


def label_key(labels: Mapping[str, str]) -> LabelKey:
    """A node's labels as a hashable key (nodes with equal labels share their config)."""
    return tuple(sorted(labels.items()))


class ConfigService:
    def __init__(
        self,
        nodes: NodeService,
        store: PolicyStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nodes = nodes
        self._store = store
        self._clock = clock
        self._policies: dict[str, ActivePolicy] = {}
        self._labels: dict[str, LabelKey] = {}
        self._groups: dict[tuple[str, ...], Effective] = {}
        self._by_labels: dict[LabelKey, Effective] = {}
        self._desired: dict[str, Effective] = {}
        self._handed: dict[str, str] = {}
        self._docs: dict[str, Effective] = {EMPTY.hash: EMPTY}
        self._states: dict[str, NodeConfigState] = {}
        self.rollouts: dict[str, Rollout] = {}
        self._state_listeners: list[Callable[[str, str, str], None]] = []
        self.on_state: Callable[[str, str, str, str], Awaitable[None]] | None = None
        """(node_id, config_hash, state, error) after a state change a node reported."""
        nodes.add_register_listener(self.node_registered)
        nodes.add_forget_listener(self.node_forgotten)

    def add_state_listener(self, listener: Callable[[str, str, str], None]) -> None:
        """``listener(node_id, state, error)`` runs after every ReportConfigState."""
        self._state_listeners.append(listener)

    async def start(self, policies: Sequence[ActivePolicy] = ()) -> None:
        """Load node labels and reported states, then compute every node's config."""
        self._labels = {n.node_id: label_key(n.labels) for n in await self._nodes.list_all()}
        if self._store is not None:
            self._states = {s.node_id: s for s in await self._store.load_config_states()}
        self.set_policies(policies, initial=True)

    # -- hot paths ---------------------------------------------------------------------------

    def hash_for(self, node_id: str) -> str:
        """The config hash to put in the node's HeartbeatResponse ("" when none is known)."""
        return self._handed.get(node_id, "")

    async def get(self, node_id: str, config_type: str) -> tuple[bytes, str]:
        """GetConfig: the node's effective central config as YAML, and its hash."""
        await self._nodes.ensure_known(node_id)
        kind = config_type or "daemon"
        if kind not in CONFIG_TYPES:
            raise InvalidArgument(
                f"config_type must be one of {', '.join(CONFIG_TYPES)}, got {config_type[:40]!r}"
            )
        if kind != "daemon":
            return b"", ""
        handed = self._handed.get(node_id)
        if handed == "":
            return b"", ""  # waiting in a rollout restored after a restart: keep what you run
        if handed is None:
            # Registered through another replica since this one started: one read, then cached.
            node = await self._nodes.get(node_id)
            handed = self._place(node_id, node.labels).hash
        effective = self._docs[handed]
        return effective.data, effective.hash

    async def report(self, node_id: str, config_hash: str, state: str, error: str) -> None:
        """ReportConfigState: store what the node said, advance rollouts."""
        await self._nodes.ensure_known(node_id)
        if state not in CONFIG_STATES:
            raise InvalidArgument(f"state must be one of {', '.join(CONFIG_STATES)}, got {state!r}")
        if len(config_hash) > 64:
            raise InvalidArgument("config_hash longer than 64 characters")
        record = NodeConfigState(node_id, config_hash, state, error[:1024], self._clock())
        if self._store is not None:
            await self._store.save_config_state(record)
        previous = self._states.get(node_id)
        self._states[node_id] = record
        changed = previous is None or (previous.config_hash, previous.state) != (config_hash, state)
        if changed and self.on_state is not None:
            await self.on_state(node_id, config_hash, state, record.error)
        log.info("node %s config %s: %s %s", node_id, config_hash[:12], state, error)
        for listener in self._state_listeners:
            listener(node_id, state, error)
        if state == "applying":
            return
        for name, rollout in list(self.rollouts.items()):
            if node_id in rollout.inflight and self._handed.get(node_id) == config_hash:
                was_paused = rollout.paused
                rollout.finished(node_id, state == "applied")
                if rollout.paused and not was_paused:
                    log.warning("rollout of policy %s halted: %s", name, rollout.summary())
                    if self._store is not None:
                        await self._store.set_paused(name, True, self._clock())
                self._advance(name)

    # -- policy and node changes ------------------------------------------------------------

    def node_registered(self, node_id: str, labels: Mapping[str, str]) -> None:
        if self._labels.get(node_id) == label_key(labels) and node_id in self._handed:
            return
        self._place(node_id, labels)

    def node_forgotten(self, node_id: str) -> None:
        self._labels.pop(node_id, None)
        self._desired.pop(node_id, None)
        self._handed.pop(node_id, None)
        self._states.pop(node_id, None)
        for rollout in self.rollouts.values():
            rollout.drop(node_id)

    def set_policies(
        self, policies: Sequence[ActivePolicy], *, changed: str = "", initial: bool = False
    ) -> None:
        """Recompute every node after a policy change (``changed``: the policy written)."""
        before = self._policies
        self._policies = {p.doc.name: p for p in sorted(policies, key=lambda p: p.doc.name)}
        self._groups = {}
        self._by_labels = {}
        active = self._policies.get(changed)
        spec = active.doc.rollout_spec() if active is not None else None
        gated: list[str] = []
        scope: dict[LabelKey, bool] = {}  # per distinct label set: does the changed policy touch it?
        for node_id, key in self._labels.items():
            effective = self._effective(key)
            self._desired[node_id] = effective
            previous = self._handed.get(node_id)
            if spec is not None and not initial and previous is not None and previous != effective.hash:
                in_scope = scope.get(key)
                if in_scope is None:
                    labels = dict(key)
                    was = before.get(changed)
                    in_scope = scope[key] = active is not None and (
                        active.doc.selects(labels) or (was is not None and was.doc.selects(labels))
                    )
                if in_scope:
                    gated.append(node_id)
                    continue
            if not self.rollouts or not self._waiting(node_id):
                self._handed[node_id] = effective.hash
        if initial:
            self._restore_rollouts()
        if spec is not None and active is not None and not initial:
            self.rollouts[changed] = Rollout(
                changed, active.revision, spec, targets=len(gated), waiting=dict.fromkeys(gated)
            )
            self._advance(changed)
        for name in list(self.rollouts):
            if name not in self._policies:
                self._release(name)
        self._collect()

    def expire_rollouts(self, timeout: float) -> None:
        """Let nodes that did not report within ``timeout`` of being handed a revision leave
        their rollout's window (run periodically)."""
        cutoff = self._clock() - timeout
        for name, rollout in list(self.rollouts.items()):
            late = rollout.expire(cutoff)
            if late:
                log.warning(
                    "rollout of policy %s: %d nodes did not report within %gs", name, len(late), timeout
                )
                self._advance(name)

    def resume(self, name: str) -> bool:
        """Resume a halted rollout; False when the policy has none."""
        rollout = self.rollouts.get(name)
        if rollout is None:
            return False
        rollout.paused = False
        self._advance(name)
        return True

    # -- queries ------------------------------------------------------------------------------

    def node_view(self, node_id: str) -> dict[str, Any]:
        desired = self._desired.get(node_id, EMPTY)
        handed = self._handed.get(node_id, "")
        state = self._states.get(node_id)
        return {
            "node_id": node_id,
            "config_hash": desired.hash,
            "handed_hash": handed,
            "state": self._state_of(node_id, desired.hash),
            "error": state.error if state is not None and state.state == "failed" else "",
            "reported": None
            if state is None
            else {
                "config_hash": state.config_hash,
                "state": state.state,
                "error": state.error,
                "at": state.updated_at,
            },
            "policies": [{"name": n, "revision": r, "hash": h} for n, r, h in desired.policies],
            "config": desired.document,
            "config_yaml": desired.data.decode(),
        }

    def policy_nodes(self, name: str) -> list[dict[str, Any]]:
        """Per selected node: the policy revision it should run, its config state and error."""
        rows = []
        for node_id in sorted(self._desired):
            desired = self._desired[node_id]
            mine = [p for p in desired.policies if p[0] == name]
            if not mine:
                continue
            state = self._states.get(node_id)
            rows.append(
                {
                    "node_id": node_id,
                    "revision": mine[0][1],
                    "revision_hash": mine[0][2],
                    "config_hash": desired.hash,
                    "state": self._state_of(node_id, desired.hash),
                    "error": state.error if state is not None and state.state == "failed" else "",
                    "applied_hash": state.config_hash if state and state.state == "applied" else "",
                }
            )
        return rows

    def rollout_view(self, name: str) -> dict[str, Any] | None:
        rollout = self.rollouts.get(name)
        return rollout.summary() if rollout is not None else None

    # -- internals --------------------------------------------------------------------------

    def _state_of(self, node_id: str, desired_hash: str) -> str:
        state = self._states.get(node_id)
        if state is None and desired_hash == EMPTY.hash:
            return "none"
        if state is not None and state.config_hash == desired_hash:
            return state.state
        if state is not None and state.state == "failed" and self._handed.get(node_id) == state.config_hash:
            return "failed"
        return "pending"

    def pinned_versions(self) -> dict[str, dict[str, tuple[str, str]]]:
        """node id -> {component: (version, policy name)}, for the nodes a policy pins versions
        for (``update`` in the policy); computed from memory, once per distinct label set."""
        pinning = [p.doc for p in self._policies.values() if p.doc.update]
        if not pinning:
            return {}
        by_labels: dict[LabelKey, dict[str, tuple[str, str]]] = {}
        out: dict[str, dict[str, tuple[str, str]]] = {}
        for node_id, key in self._labels.items():
            found = by_labels.get(key)
            if found is None:
                labels = dict(key)
                found = by_labels[key] = pins([doc for doc in pinning if doc.selects(labels)])
            if found:
                out[node_id] = found
        return out

    def _effective(self, labels_key: LabelKey) -> Effective:
        cached = self._by_labels.get(labels_key)
        if cached is not None:
            return cached
        labels = dict(labels_key)
        key = tuple(name for name, p in self._policies.items() if p.doc.selects(labels))
        found = self._groups.get(key)
        if found is not None:
            return found
        chosen = [self._policies[name] for name in key]
        document = merge([p.doc for p in chosen])
        digest = content_hash(document)
        effective = self._docs.get(digest)
        policies = tuple((p.doc.name, p.revision, p.hash) for p in chosen)
        if effective is None or effective.policies != policies:
            data = to_yaml(document).encode() if document else b""
            effective = Effective(digest, data, document, policies)
            self._docs.setdefault(digest, effective)
        self._groups[key] = effective
        self._by_labels[labels_key] = effective
        return effective

    def _place(self, node_id: str, labels: Mapping[str, str]) -> Effective:
        key = label_key(labels)
        self._labels[node_id] = key
        effective = self._effective(key)
        self._desired[node_id] = effective
        if not self._waiting(node_id):
            self._handed[node_id] = effective.hash
        return effective

    def _restore_rollouts(self) -> None:
        """At start: rebuild the rollouts of policies with ``rollout`` from the reported states.

        A node that reported another config than the one it should run waits again and is
        handed "" meanwhile (no opinion: it keeps what it runs); a halted rollout stays halted.
        Nodes that never reported get their config at once (there is nothing to protect).
        """
        for name, policy in self._policies.items():
            spec = policy.doc.rollout_spec()
            if spec is None:
                continue
            rollout = Rollout(name, policy.revision, spec, targets=0, paused=policy.rollout_paused)
            selected: dict[LabelKey, bool] = {}
            for node_id, key in self._labels.items():
                if key not in selected:
                    selected[key] = policy.doc.selects(dict(key))
                state = self._states.get(node_id)
                if not selected[key] or state is None:
                    continue
                if state.config_hash != self._desired[node_id].hash:
                    rollout.waiting[node_id] = None
                    self._handed[node_id] = ""
                elif state.state == "applied":
                    rollout.applied.add(node_id)
                elif state.state == "failed":
                    rollout.failed.add(node_id)
                else:
                    rollout.inflight[node_id] = self._clock()
            if rollout.done:
                continue
            rollout.targets = (
                len(rollout.waiting) + len(rollout.inflight) + len(rollout.applied) + len(rollout.failed)
            )
            self.rollouts[name] = rollout
            word = "halted" if rollout.paused else "resumed"
            log.warning("rollout of policy %s %s after a restart: %s", name, word, rollout.summary())
            self._advance(name)

    def _waiting(self, node_id: str) -> bool:
        return any(node_id in r.waiting for r in self.rollouts.values())

    def _advance(self, name: str) -> None:
        rollout = self.rollouts[name]
        for node_id in rollout.admit(self._clock()):
            desired = self._desired.get(node_id)
            if desired is not None:
                self._handed[node_id] = desired.hash
        if rollout.done:
            log.info("rollout of policy %s finished: %s", name, rollout.summary())
            del self.rollouts[name]

    def _release(self, name: str) -> None:
        rollout = self.rollouts.pop(name)
        for node_id in rollout.waiting:
            desired = self._desired.get(node_id)
            if desired is not None and not self._waiting(node_id):
                self._handed[node_id] = desired.hash

    def _collect(self) -> None:
        """Forget documents no node is handed or wants any more."""
        live = {e.hash for e in self._desired.values()} | set(self._handed.values()) | {EMPTY.hash}
        for digest in [d for d in self._docs if d not in live]:
            del self._docs[digest]
