"""The rollout runner against in-memory fakes: batches, canaries, the failure threshold."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from opsfleet.common.errors import FailedPrecondition, Unavailable
from opsfleet.manager.domain import (
    Artifact,
    Rollout,
    RolloutNode,
    RolloutNodeState,
    RolloutState,
    UpdateOutcome,
)
from opsfleet.manager.services.rollout_runner import RunnerDeps, batch_size, run_rollout
from opsfleet.manager.services.rollouts import RolloutService
from tests.helpers import assert_eventually

ARTIFACT = Artifact(1, "agent:a", "2", "a.tgz", 10, "f" * 64, "sig", False, 0.0, "admin")


class FakeStore:
    def __init__(self, rollout: Rollout, nodes: list[RolloutNode]) -> None:
        self.rollout = rollout
        self.nodes = {n.node_id: n for n in nodes}

    async def get_rollout(self, rollout_id: int) -> Rollout | None:
        return self.rollout

    async def rollout_nodes(self, rollout_id: int) -> list[RolloutNode]:
        return sorted(self.nodes.values(), key=lambda n: n.position)

    async def set_rollout_state(
        self,
        rollout_id: int,
        state: RolloutState,
        message: str,
        now: float,
        *,
        only_from: Sequence[RolloutState] = (),
    ) -> Rollout | None:
        self.rollout = replace(self.rollout, state=state, message=message)
        return self.rollout

    async def resume_halted(
        self, rollout_id: int, pause_on_failure: float, message: str, now: float
    ) -> Rollout | None:
        if self.rollout.state is not RolloutState.HALTED:
            return None
        self.rollout = replace(
            self.rollout, state=RolloutState.RUNNING, pause_on_failure=pause_on_failure, message=message
        )
        return self.rollout

    async def set_node_state(self, node: RolloutNode) -> None:
        self.nodes[node.node_id] = node

    async def rollouts_in_state(self, state: RolloutState) -> list[Rollout]:
        return [self.rollout] if self.rollout.state is state else []


class FakeDaemon:
    def __init__(self, outcome: str, log: list[str], node_id: str) -> None:
        self.outcome, self.log, self.node_id = outcome, log, node_id
        self.pushed = False

    async def push_update(
        self, *, component: str, version: str, download_url: str, sha256: str, signature: str
    ) -> str:
        if self.outcome == "unreachable":
            raise Unavailable("node unreachable")
        self.pushed = True
        self.log.append(self.node_id)
        return "accepted"

    async def update_status(self, component: str) -> UpdateOutcome | None:
        if not self.pushed:
            return None
        return UpdateOutcome(component, "2", self.outcome, f"{self.outcome} here", "1", 1)


def rollout(max_parallel: str, canary: int = 0, threshold: float = 0.0) -> Rollout:
    return Rollout(
        1, "agent:a", "2", 1, {}, max_parallel, canary, threshold, RolloutState.RUNNING, "", "ops", 0.0, 0.0
    )


def deps_for(r: Rollout, outcomes: dict[str, str]) -> tuple[RunnerDeps, FakeStore, list[str]]:
    nodes = [RolloutNode(1, n, i, i < r.canary, RolloutNodeState.PENDING) for i, n in enumerate(outcomes)]
    store = FakeStore(r, nodes)
    order: list[str] = []
    daemons = {n: FakeDaemon(o, order, n) for n, o in outcomes.items()}
    audit: list[str] = []

    async def client_for(node_id: str) -> FakeDaemon:
        return daemons[node_id]

    async def artifact(artifact_id: int) -> Artifact:
        return ARTIFACT

    async def record(user: str, action: str, target: str, detail: str) -> None:
        audit.append(action)

    deps = RunnerDeps(
        store, client_for, artifact, lambda a: "http://m/x", record, poll_interval=0.001, node_timeout=1.0
    )  # type: ignore[arg-type]
    return deps, store, order


async def run(r: Rollout, outcomes: dict[str, str]) -> tuple[FakeStore, list[str]]:
    deps, store, order = deps_for(r, outcomes)
    await run_rollout(deps, 1)
    return store, order


@pytest.mark.parametrize(
    ("spec", "total", "size"), [("1", 10, 1), ("3", 2, 3), ("25%", 10, 2), ("10%", 3, 1), ("100%", 4, 4)]
)
def test_batch_size(spec: str, total: int, size: int) -> None:
    assert batch_size(spec, total) == size


async def test_all_done() -> None:
    store, order = await run(rollout("2", canary=1), {"a": "done", "b": "done", "c": "done"})
    assert store.rollout.state is RolloutState.DONE
    assert order[0] == "a" and sorted(order) == ["a", "b", "c"]


async def test_halts_when_failures_pass_the_threshold() -> None:
    outcomes = {"a": "done", "b": "rolled_back", "c": "done", "d": "done"}
    store, order = await run(rollout("1", threshold=20), outcomes)
    assert store.rollout.state is RolloutState.HALTED
    assert order == ["a", "b"]
    assert {n: store.nodes[n].state.value for n in outcomes} == {
        "a": "done",
        "b": "rolled_back",
        "c": "pending",
        "d": "pending",
    }


async def test_failures_under_the_threshold_go_on_and_unreachable_nodes_fail() -> None:
    outcomes = {"a": "unreachable", "b": "done", "c": "done", "d": "done"}
    store, _ = await run(rollout("1", threshold=30), outcomes)
    assert store.rollout.state is RolloutState.DONE
    assert (
        store.nodes["a"].state is RolloutNodeState.FAILED and store.nodes["a"].message == "node unreachable"
    )


async def test_a_halted_rollout_resumes_and_halts_again_at_the_next_failure() -> None:
    outcomes = {"a": "done", "b": "rolled_back", "c": "failed", "d": "done", "e": "done"}
    deps, store, order = deps_for(rollout("1"), outcomes)
    service = RolloutService(deps, find_artifact=None, list_nodes=None)  # type: ignore[arg-type]
    await run_rollout(deps, 1)
    assert store.rollout.state is RolloutState.HALTED and order == ["a", "b"]

    async def settled() -> bool:
        return store.rollout.state is not RolloutState.RUNNING

    resumed = await service.resume(1)
    assert resumed.state is RolloutState.RUNNING and resumed.pause_on_failure == 20.0
    await assert_eventually(settled)
    assert store.rollout.state is RolloutState.HALTED and order == ["a", "b", "c"]  # 2 of 5 > 20%

    resumed = await service.resume(1)
    assert resumed.pause_on_failure == 40.0 and "2 failed nodes accepted" in resumed.message
    await assert_eventually(settled)
    assert store.rollout.state is RolloutState.DONE and order == ["a", "b", "c", "d", "e"]
    with pytest.raises(FailedPrecondition, match="is done; this needs paused, halted"):
        await service.resume(1)
    await service.stop()


async def test_only_the_leader_runs_rollouts_and_the_next_leader_continues() -> None:
    """Replicas: a follower leaves a running rollout alone; losing the leadership stops the
    runner at once (it never reaches node b); the next leader continues from the store."""
    deps, store, order = deps_for(rollout("1"), {"a": "done", "b": "done"})
    gate = asyncio.Event()
    calls = await deps.client_for("a")
    answer = calls.update_status

    async def gated(component: str) -> UpdateOutcome | None:
        if calls.pushed:  # type: ignore[attr-defined]
            await gate.wait()
        return await answer(component)

    calls.update_status = gated  # type: ignore[method-assign]
    deps = replace(deps, node_timeout=30.0)
    first = RolloutService(deps, find_artifact=None, list_nodes=None, leader=False)  # type: ignore[arg-type]
    second = RolloutService(deps, find_artifact=None, list_nodes=None, leader=False)  # type: ignore[arg-type]
    await first.start()
    await second.start()
    try:
        first.leadership_changed(True)
        await assert_eventually(lambda: order == ["a"])
        first.leadership_changed(False)
        assert store.nodes["a"].state is RolloutNodeState.UPDATING
        gate.set()
        second.leadership_changed(True)

        async def done() -> bool:
            return store.rollout.state is RolloutState.DONE

        await assert_eventually(done, timeout=10)
        # The fake daemon reports an old finish time, so the new leader pushes "a" once more.
        assert order[-1] == "b" and order.count("b") == 1
    finally:
        await first.stop()
        await second.stop()
