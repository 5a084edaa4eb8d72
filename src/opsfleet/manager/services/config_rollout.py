"""Staged delivery of one policy revision: at most N nodes at a time, halting on failures.

A :class:`Rollout` only decides *which* waiting nodes may be handed their new config hash
next; :class:`~opsfleet.manager.services.configs.ConfigService` owns the hashes. Nodes
leave ``inflight`` when they report ``applied`` or ``failed`` for the hash they were
handed; when failed / (applied + failed) exceeds ``pause_on_failure`` percent the rollout
halts until resumed. Pure logic, no I/O; called from the event loop only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsfleet.manager.services.policy_doc import Rollout as RolloutSpec


@dataclass
class Rollout:
    policy: str
    revision: int
    spec: RolloutSpec
    targets: int
    waiting: dict[str, None] = field(default_factory=dict)  # ordered: first in, first handed
    inflight: dict[str, float] = field(default_factory=dict)  # node id -> when it was handed the hash
    applied: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    timed_out: set[str] = field(default_factory=set)
    paused: bool = False

    @property
    def window(self) -> int:
        return self.spec.window(self.targets)

    @property
    def done(self) -> bool:
        return not self.waiting and not self.inflight

    def admit(self, now: float = 0.0) -> list[str]:
        """Nodes that may be handed the new hash now (moved to ``inflight``)."""
        out: list[str] = []
        while not self.paused and self.waiting and len(self.inflight) < self.window:
            node_id = next(iter(self.waiting))
            del self.waiting[node_id]
            self.inflight[node_id] = now
            out.append(node_id)
        return out

    def finished(self, node_id: str, ok: bool) -> None:
        """The node reported applied (``ok``) or failed for the handed hash."""
        if node_id not in self.inflight:
            return
        del self.inflight[node_id]
        (self.applied if ok else self.failed).add(node_id)
        reported = len(self.applied) + len(self.failed)
        if not ok and len(self.failed) * 100 / reported > self.spec.pause_on_failure:
            self.paused = True

    def expire(self, cutoff: float) -> list[str]:
        """Nodes handed the hash before ``cutoff`` that never reported leave the window
        (counted as timed out, not as failed: an offline node says nothing about the config)."""
        late = [node_id for node_id, since in self.inflight.items() if since < cutoff]
        for node_id in late:
            del self.inflight[node_id]
            self.timed_out.add(node_id)
        return late

    def drop(self, node_id: str) -> None:
        self.inflight.pop(node_id, None)
        self.waiting.pop(node_id, None)

    def summary(self) -> dict[str, object]:
        return {
            "revision": self.revision,
            "targets": self.targets,
            "waiting": len(self.waiting),
            "inflight": len(self.inflight),
            "applied": len(self.applied),
            "failed": len(self.failed),
            "timed_out": len(self.timed_out),
            "paused": self.paused,
            "max_parallel": self.window,
            "pause_on_failure": self.spec.pause_on_failure,
        }
