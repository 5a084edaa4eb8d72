"""Fleet rollouts: start one over the nodes a label selector matches, follow it, pause, resume,
cancel. The work itself is done by :mod:`opsfleet.manager.services.rollout_runner`, one owned
task per running rollout.

Lifecycle: ``start()`` picks up the rollouts a previous Manager left running; ``stop()``
cancels the running tasks (their rollouts stay ``running`` in the database and continue
at the next start; nodes being updated are watched again, not pushed twice). ``stop()`` is
idempotent.

Several Manager replicas: only the elected one (``leadership_changed(True)``) runs rollout
tasks. A rollout created or resumed through another replica is stored ``running`` and the
leader's watch loop (every :data:`WATCH_INTERVAL`) starts it; a replica that loses the
leadership cancels its tasks at once, and the next leader continues them from the database.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from opsfleet.common.errors import FailedPrecondition, InvalidArgument, NotFound
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.signing import check_target
from opsfleet.manager.domain import Artifact, Rollout, RolloutNode, RolloutNodeState, RolloutState
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.services.rollout_runner import FAILED_STATES, RunnerDeps, run_rollout
from opsfleet.manager.store.base import Store

log = logging.getLogger(__name__)

WATCH_INTERVAL = 2.0
MAX_PARALLEL_RE = re.compile(r"([1-9][0-9]{0,5})|([1-9][0-9]?|100)%")
_RS = RolloutState


async def select_nodes(
    nodes: NodeService, store: Store, selector: Mapping[str, str], component: str
) -> list[str]:
    """Nodes whose labels match every ``selector`` entry (and that have the agent, for
    ``agent:<id>``), by node id."""
    chosen = []
    for node in sorted(await nodes.list_all(), key=lambda n: n.node_id):
        if any(node.labels.get(k) != v for k, v in selector.items()):
            continue
        if component.startswith("agent:"):
            agent_id = component.removeprefix("agent:")
            agents = await store.list_agents(node.node_id)
            if not any(a.agent_id == agent_id and a.status != "removed" for a in agents):
                continue
        chosen.append(node.node_id)
    return chosen


class RolloutService:
    def __init__(
        self,
        deps: RunnerDeps,
        *,
        find_artifact: Callable[[str, str], Awaitable[Artifact]],
        list_nodes: Callable[[Mapping[str, str], str], Awaitable[list[str]]],
        clock: Callable[[], float] = time.time,
        leader: bool = True,
    ) -> None:
        """``list_nodes(selector, component)``: the ids of the nodes to update, in order."""
        self._deps = deps
        self._store = deps.store
        self._find_artifact = find_artifact
        self._list_nodes = list_nodes
        self._clock = clock
        self._tasks = TaskOwner("rollouts")
        self._running: dict[int, asyncio.Task[None]] = {}
        self._leader = asyncio.Event()
        if leader:
            self._leader.set()
        self._stop = asyncio.Event()
        self._started = False

    async def start(self) -> None:
        """Start the watch loop; rollouts run once this replica is the leader."""
        if not self._started:
            self._started = True
            self._tasks.spawn("watch", self._watch())

    async def stop(self) -> None:
        self._stop.set()
        self._leader.clear()
        await self._tasks.stop()

    def leadership_changed(self, leader: bool) -> None:
        """Run rollouts while leader; on losing the leadership cancel the running ones now."""
        if leader:
            self._leader.set()
            return
        self._leader.clear()
        for rollout_id, task in list(self._running.items()):
            if not task.done():
                log.info("rollout %d: paused here, this replica is no longer the leader", rollout_id)
                task.cancel()
        self._running.clear()

    async def _watch(self) -> None:
        """While leader: pick up the rollouts left running (a previous Manager or leader) and
        those created or resumed through other replicas."""
        first = True
        while not self._stop.is_set():
            stop = asyncio.create_task(self._stop.wait())
            elected = asyncio.create_task(self._leader.wait())
            await asyncio.wait({stop, elected}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            elected.cancel()
            if self._stop.is_set():
                return
            try:
                for rollout in await self._store.rollouts_in_state(_RS.RUNNING):
                    if rollout.id not in self._running or self._running[rollout.id].done():
                        if first:
                            log.info("rollout %d: continuing (Manager restart or new leader)", rollout.id)
                        self._spawn(rollout.id)
            except Exception:
                log.exception("rollouts: looking for running rollouts failed; will retry")
            first = False
            if await sleep_or_stop(self._stop, WATCH_INTERVAL):
                return

    async def create(
        self,
        *,
        component: str,
        version: str,
        selector: Mapping[str, str],
        max_parallel: str,
        canary: int,
        pause_on_failure: float,
        username: str,
    ) -> tuple[Rollout, list[RolloutNode]]:
        check_target(component, version)
        if not MAX_PARALLEL_RE.fullmatch(max_parallel):
            raise InvalidArgument(f"max_parallel must be N or P% (1-100%), got {max_parallel[:20]!r}")
        if canary < 0 or not 0 <= pause_on_failure <= 100:
            raise InvalidArgument("canary must be >= 0 and pause_on_failure 0..100 (percent)")
        artifact = await self._find_artifact(component, version)
        if not artifact.signature:
            raise FailedPrecondition(f"artifact {component} {version} is not signed")
        node_ids = await self._list_nodes(selector, component)
        if not node_ids:
            raise InvalidArgument(f"no node matches the selector {dict(selector)} (with {component})")
        now = self._clock()
        rollout = Rollout(
            id=0,
            component=component,
            version=version,
            artifact_id=artifact.id,
            selector=dict(selector),
            max_parallel=max_parallel,
            canary=canary,
            pause_on_failure=pause_on_failure,
            state=_RS.RUNNING,
            message=f"{len(node_ids)} nodes",
            created_by=username,
            created_at=now,
            updated_at=now,
        )
        nodes = [
            RolloutNode(0, node_id, i, i < canary, RolloutNodeState.PENDING)
            for i, node_id in enumerate(node_ids)
        ]
        stored = await self._store.insert_rollout(rollout, nodes)
        log.info(
            "rollout %d: %s %s over %d nodes started by %s",
            stored.id,
            component,
            version,
            len(nodes),
            username,
        )
        self._spawn(stored.id)
        return stored, [replace(n, rollout_id=stored.id) for n in nodes]

    async def recent(self, limit: int = 100) -> list[Rollout]:
        return await self._store.list_rollouts(limit)

    async def get(self, rollout_id: int) -> tuple[Rollout, list[RolloutNode]]:
        rollout = await self._store.get_rollout(rollout_id)
        if rollout is None:
            raise NotFound(f"no rollout {rollout_id}")
        return rollout, await self._store.rollout_nodes(rollout_id)

    async def pause(self, rollout_id: int) -> Rollout:
        return await self._move(
            rollout_id, _RS.PAUSED, [_RS.RUNNING], "paused: nodes being updated finish first"
        )

    async def cancel(self, rollout_id: int) -> Rollout:
        return await self._move(
            rollout_id,
            _RS.CANCELLED,
            [_RS.RUNNING, _RS.PAUSED, _RS.HALTED],
            "cancelled: pending nodes stay as they are",
        )

    async def resume(self, rollout_id: int) -> Rollout:
        """Paused or halted -> running; the pending nodes go on in batches.

        From halted, the failures so far are accepted: ``pause_on_failure`` becomes their share
        of all nodes (when that is higher), so the rollout halts again at its next failure
        (e.g. 10 nodes, 0%, 1 failed: 0% -> 10%, and a second failure halts it)."""
        current, nodes = await self.get(rollout_id)
        if current.state not in (_RS.PAUSED, _RS.HALTED):
            raise FailedPrecondition(
                f"rollout {rollout_id} is {current.state.value}; this needs paused, halted"
            )
        if current.state is _RS.HALTED:
            failed = sum(1 for n in nodes if n.state in FAILED_STATES)
            # The same expression as the runner's check, so the accepted share is not over it.
            share = failed * 100 / len(nodes) if nodes else 0.0
            threshold = max(current.pause_on_failure, share)
            message = (
                f"resumed after a halt: {failed} failed nodes accepted, "
                f"pause_on_failure {current.pause_on_failure:g}% -> {threshold:g}%"
            )
            moved = await self._store.resume_halted(rollout_id, threshold, message, self._clock())
            if moved is None:
                raise FailedPrecondition(f"rollout {rollout_id} is no longer halted")
            log.info("rollout %d: %s", rollout_id, message)
        else:
            moved = await self._move(rollout_id, _RS.RUNNING, [_RS.PAUSED], "resumed")
        self._spawn(rollout_id)
        return moved

    async def _move(
        self, rollout_id: int, state: RolloutState, allowed: list[RolloutState], message: str
    ) -> Rollout:
        moved = await self._store.set_rollout_state(
            rollout_id, state, message, self._clock(), only_from=allowed
        )
        if moved is None:
            current, _ = await self.get(rollout_id)
            names = ", ".join(s.value for s in allowed)
            raise FailedPrecondition(f"rollout {rollout_id} is {current.state.value}; this needs {names}")
        log.info("rollout %d: %s", rollout_id, message)
        return moved

    def _spawn(self, rollout_id: int) -> None:
        if not self._leader.is_set():
            return  # the leader's watch loop starts it
        running = self._running.get(rollout_id)
        if running is not None and not running.done():
            return  # its loop re-reads the state after the current batch
        self._running[rollout_id] = self._tasks.spawn(f"rollout-{rollout_id}", self._guarded(rollout_id))

    async def _guarded(self, rollout_id: int) -> None:
        """Run the rollout; a failure of the runner itself (database, bug) halts it with the reason."""
        try:
            await run_rollout(self._deps, rollout_id)
        except Exception as exc:
            log.exception("rollout %d: the runner failed", rollout_id)
            await self._store.set_rollout_state(
                rollout_id,
                _RS.HALTED,
                f"halted: internal error: {exc!r}",
                self._clock(),
                only_from=[_RS.RUNNING],
            )
