"""Runs one rollout: canaries first, then batches of ``max_parallel`` nodes, halting on failures.

For each node: PushUpdate with a download URL of the artifact (short-lived token), then
GetUpdateStatus until the daemon reports the outcome for this version (done, rolled_back,
failed) or ``node_timeout`` passes (failed). A node that cannot be reached or refuses the
update is failed. After every batch the runner re-reads the rollout: paused or cancelled
stops it (nodes already updating finish first), and failed + rolled-back nodes above
``pause_on_failure`` percent of all nodes halt it. Each node's outcome is audit-logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from opsfleet.common.errors import OpsfleetError
from opsfleet.manager.domain import (
    Artifact,
    Rollout,
    RolloutNode,
    RolloutNodeState,
    RolloutState,
    UpdateOutcome,
)

log = logging.getLogger(__name__)

_NS = RolloutNodeState
FAILED_STATES = frozenset({_NS.FAILED, _NS.ROLLED_BACK})
_OUTCOMES = {"done": _NS.DONE, "rolled_back": _NS.ROLLED_BACK, "failed": _NS.FAILED}


class UpdateCalls(Protocol):
    async def push_update(
        self, *, component: str, version: str, download_url: str, sha256: str, signature: str
    ) -> str: ...

    async def update_status(self, component: str) -> UpdateOutcome | None: ...


class RolloutStore(Protocol):
    async def insert_rollout(self, rollout: Rollout, nodes: Sequence[RolloutNode]) -> Rollout: ...

    async def get_rollout(self, rollout_id: int) -> Rollout | None: ...

    async def list_rollouts(self, limit: int = 100) -> list[Rollout]: ...

    async def rollout_nodes(self, rollout_id: int) -> list[RolloutNode]: ...

    async def set_rollout_state(
        self,
        rollout_id: int,
        state: RolloutState,
        message: str,
        now: float,
        *,
        only_from: Sequence[RolloutState] = (),
    ) -> Rollout | None: ...

    async def resume_halted(
        self, rollout_id: int, pause_on_failure: float, message: str, now: float
    ) -> Rollout | None: ...

    async def set_node_state(self, node: RolloutNode) -> None: ...

    async def rollouts_in_state(self, state: RolloutState) -> list[Rollout]: ...


@dataclass(frozen=True)
class RunnerDeps:
    store: RolloutStore
    client_for: Callable[[str], Awaitable[UpdateCalls]]
    """The update calls of a node (by node id); raises NotFound/Unavailable."""
    artifact: Callable[[int], Awaitable[Artifact]]
    download_url: Callable[[Artifact], str]
    audit: Callable[[str, str, str, str], Awaitable[None]]
    """(username, action, target, detail)."""
    poll_interval: float
    node_timeout: float
    clock: Callable[[], float] = time.time
    on_node_done: Callable[[str, str, str, str], None] | None = None
    """(node_id, component, state, message) when a node's update finished."""


def batch_size(max_parallel: str, total: int) -> int:
    """``N`` or ``P%`` of ``total`` nodes, at least 1."""
    if max_parallel.endswith("%"):
        return max(1, math.floor(total * float(max_parallel[:-1]) / 100))
    return max(1, int(max_parallel))


def over_threshold(nodes: Sequence[RolloutNode], percent: float) -> bool:
    failed = sum(1 for n in nodes if n.state in FAILED_STATES)
    return bool(nodes) and failed * 100 / len(nodes) > percent


async def run_rollout(deps: RunnerDeps, rollout_id: int) -> None:
    """Drive the rollout until it is done, halted, paused or cancelled."""
    while True:
        rollout = await deps.store.get_rollout(rollout_id)
        if rollout is None or rollout.state is not RolloutState.RUNNING:
            return
        nodes = await deps.store.rollout_nodes(rollout_id)
        if over_threshold(nodes, rollout.pause_on_failure):
            failed = sorted(n.node_id for n in nodes if n.state in FAILED_STATES)
            message = f"halted: {len(failed)} of {len(nodes)} nodes failed ({', '.join(failed)})"
            await _finish(deps, rollout, RolloutState.HALTED, message)
            return
        batch = _next_batch(rollout, nodes)
        if not batch:
            await _finish(deps, rollout, RolloutState.DONE, f"{len(nodes)} nodes updated")
            return
        artifact = await deps.artifact(rollout.artifact_id)
        await asyncio.gather(*(_update_node(deps, rollout, artifact, node) for node in batch))


def _next_batch(rollout: Rollout, nodes: Sequence[RolloutNode]) -> list[RolloutNode]:
    """Nodes left over as updating (a restarted Manager) first, then canaries, then the rest."""
    size = batch_size(rollout.max_parallel, len(nodes))
    updating = [n for n in nodes if n.state is _NS.UPDATING]
    if updating:
        return updating
    pending = [n for n in nodes if n.state is _NS.PENDING]
    canaries = [n for n in pending if n.canary]
    return (canaries or pending)[:size]


async def _finish(deps: RunnerDeps, rollout: Rollout, state: RolloutState, message: str) -> None:
    await deps.store.set_rollout_state(
        rollout.id, state, message, deps.clock(), only_from=[RolloutState.RUNNING]
    )
    log.info("rollout %d (%s %s): %s", rollout.id, rollout.component, rollout.version, message)
    await deps.audit(rollout.created_by, f"rollouts.{state.value}", f"rollout={rollout.id}", message)


async def _update_node(deps: RunnerDeps, rollout: Rollout, artifact: Artifact, node: RolloutNode) -> None:
    resumed = node.state is _NS.UPDATING  # left over by a Manager that stopped meanwhile
    if not resumed:
        node = replace(node, state=_NS.UPDATING, message="update pushed", started_at=deps.clock())
        await deps.store.set_node_state(node)
    try:
        state, message = await _push_and_wait(deps, rollout, artifact, node, resumed=resumed)
    except OpsfleetError as exc:
        state, message = _NS.FAILED, exc.message
    done = replace(node, state=state, message=message, finished_at=deps.clock())
    await deps.store.set_node_state(done)
    log.info("rollout %d: node %s %s (%s)", rollout.id, node.node_id, state.value, message)
    if deps.on_node_done is not None:
        deps.on_node_done(node.node_id, rollout.component, state.value, message)
    target = f"rollout={rollout.id} node={node.node_id}"
    await deps.audit(rollout.created_by, f"rollouts.node.{state.value}", target, message)


async def _push_and_wait(
    deps: RunnerDeps, rollout: Rollout, artifact: Artifact, node: RolloutNode, *, resumed: bool
) -> tuple[RolloutNodeState, str]:
    client = await deps.client_for(node.node_id)
    status = await client.update_status(rollout.component)
    ours = status is not None and status.version == rollout.version
    in_progress = ours and status is not None and not status.finished_at
    settled_since = ours and status is not None and resumed and status.finished_at >= int(node.started_at)
    if not (in_progress or settled_since):
        reply = await client.push_update(
            component=rollout.component,
            version=rollout.version,
            download_url=deps.download_url(artifact),
            sha256=artifact.sha256,
            signature=artifact.signature,
        )
        if "already runs" in reply:
            return _NS.DONE, reply
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.node_timeout
    while True:
        status = await client.update_status(rollout.component)
        if status is not None and status.version == rollout.version and status.finished_at:
            return _OUTCOMES.get(status.state, _NS.FAILED), status.message
        if loop.time() >= deadline:
            return _NS.FAILED, f"no outcome from the daemon within {deps.node_timeout:g}s"
        await asyncio.sleep(deps.poll_interval)
