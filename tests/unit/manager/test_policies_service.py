"""PolicyService + ConfigService on a real SQLite store: revisions, rollback, hashes, reports, rollout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml

from opsfleet.common.errors import Conflict, NotFound
from opsfleet.manager.domain import NodeRegistration
from opsfleet.manager.services.configs import EMPTY, ConfigService
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.services.policies import PolicyService
from opsfleet.manager.store.policies_sql import SqlPolicyStore
from opsfleet.manager.store.sql import SqlStore


def agent(agent_id: str, *args: str) -> dict[str, Any]:
    return {"id": agent_id, "binary_path": "/bin/sleep", "args": list(args) or ["60"]}


def doc(name: str, selector: dict[str, str], *agents: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "selector": selector, "priority": 0, "config": {"agents": list(agents)}, **extra}


class Fleet:
    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.nodes = NodeService(store, offline_after=60)
        self.configs = ConfigService(self.nodes, SqlPolicyStore(store))
        self.policies = PolicyService(SqlPolicyStore(store), self.configs, refresh_interval=3600)

    async def register(self, node_id: str, **labels: str) -> None:
        await self.nodes.register(
            NodeRegistration(node_id, node_id, "10.0.0.1", "linux", "amd64", labels, "1", "1")
        )

    async def config(self, node_id: str) -> dict[str, Any]:
        data, digest = await self.configs.get(node_id, "daemon")
        assert digest == self.configs.hash_for(node_id)
        loaded: dict[str, Any] = yaml.safe_load(data) if data else {}
        return loaded


@pytest.fixture
async def fleet(database_url: str, manager_config: Callable[..., Any]) -> AsyncIterator[Fleet]:
    store = SqlStore(manager_config(database_url).database_url())
    await store.start()
    f = Fleet(store)
    await f.nodes.start()
    await f.policies.start()
    yield f
    await f.policies.stop()
    await f.nodes.stop()
    await store.close()


async def test_selection_hashes_and_get_config_from_memory(fleet: Fleet) -> None:
    await fleet.register("c1", env="canary")
    await fleet.register("p1", env="prod")
    assert fleet.configs.hash_for("c1") == EMPTY.hash
    change = await fleet.policies.apply(doc("canary", {"env": "canary"}, agent("beat")), "alice")
    assert change.changed and change.row.current.revision == 1 and "+name: canary" in change.diff
    assert (await fleet.config("c1"))["agents"][0]["id"] == "beat"
    assert await fleet.config("p1") == {}
    assert fleet.configs.hash_for("c1") != EMPTY.hash

    # GetConfig must not touch the database: it keeps answering with the store closed.
    await fleet.store.close()
    assert (await fleet.config("c1"))["agents"][0]["id"] == "beat"
    await fleet.store.start()

    unchanged = await fleet.policies.apply(doc("canary", {"env": "canary"}, agent("beat")), "alice")
    assert not unchanged.changed and unchanged.row.current.revision == 1

    # A node whose labels change is re-placed at its (re-)registration.
    await fleet.register("p1", env="canary")
    assert fleet.configs.hash_for("p1") == fleet.configs.hash_for("c1")


async def test_revisions_diff_rollback_delete(fleet: Fleet) -> None:
    await fleet.register("n1", env="canary")
    await fleet.policies.apply(doc("p", {}, agent("beat", "1")), "alice")
    first_hash = fleet.configs.hash_for("n1")
    await fleet.policies.apply(doc("p", {}, agent("beat", "2")), "bob")
    assert fleet.configs.hash_for("n1") != first_hash
    revisions = await fleet.policies.revisions("p")
    assert [(r.revision, r.author) for r in revisions] == [(1, "alice"), (2, "bob")]
    diff = await fleet.policies.diff("p", 1, 2)
    assert "-    - '1'" in diff and "+    - '2'" in diff

    back = await fleet.policies.rollback("p", 1, "carol")
    assert back.row.current.revision == 1 and back.row.current.hash == revisions[0].hash
    assert fleet.configs.hash_for("n1") == first_hash
    assert (await fleet.config("n1"))["agents"][0]["args"] == ["1"]

    await fleet.policies.delete("p", "dave")
    assert await fleet.config("n1") == {}
    assert fleet.policies.current() == []
    with pytest.raises(NotFound):
        fleet.policies.get("p")
    # Revisions are kept; re-applying continues the numbering.
    again = await fleet.policies.apply(doc("p", {}, agent("beat", "3")), "erin")
    assert again.row.current.revision == 3
    with pytest.raises(NotFound):
        await fleet.policies.rollback("p", 9, "x")


async def test_conflicting_policy_is_refused(fleet: Fleet) -> None:
    await fleet.policies.apply(doc("a", {"env": "prod"}, agent("beat", "a")), "x")
    with pytest.raises(Conflict, match="agents\\[beat\\]"):
        await fleet.policies.apply(doc("b", {"role": "web"}, agent("beat", "b")), "x")
    assert [p.name for p in fleet.policies.current()] == ["a"]


async def test_reports_give_status_and_survive_restart(fleet: Fleet) -> None:
    await fleet.register("n1", env="canary")
    await fleet.register("n2", env="canary")
    await fleet.policies.apply(doc("p", {"env": "canary"}, agent("beat")), "x")
    digest = fleet.configs.hash_for("n1")
    await fleet.configs.report("n1", digest, "applied", "")
    await fleet.configs.report("n2", digest, "failed", "agent beat failed: exit code 1")
    status = fleet.policies.status("p")
    assert status["counts"]["applied"] == 1 and status["counts"]["failed"] == 1
    rows = {r["node_id"]: r for r in status["nodes"]}
    assert rows["n2"]["error"] == "agent beat failed: exit code 1"
    assert rows["n1"]["revision_hash"] == status["hash"]

    # A second service over the same database sees the same policies and states.
    other = Fleet(fleet.store)
    await other.nodes.start()
    await other.policies.start()
    try:
        assert other.configs.hash_for("n1") == digest
        assert other.configs.node_view("n2")["state"] == "failed"
    finally:
        await other.policies.stop()
        await other.nodes.stop()


async def test_rollout_hands_the_hash_to_n_nodes_at_a_time_and_halts(fleet: Fleet) -> None:
    names = [f"n{i}" for i in range(6)]
    for name in names:
        await fleet.register(name, env="prod")
    rollout = {"max_parallel": 2, "pause_on_failure": "30%"}
    await fleet.policies.apply(doc("p", {"env": "prod"}, agent("beat", "1")), "x")
    old = fleet.configs.hash_for("n0")
    assert {fleet.configs.hash_for(n) for n in names} == {old}  # without rollout: all at once

    await fleet.policies.apply(doc("p", {"env": "prod"}, agent("beat", "2"), rollout=rollout), "x")
    handed = [n for n in names if fleet.configs.hash_for(n) != old]
    assert len(handed) == 2
    new = fleet.configs.hash_for(handed[0])
    # Waiting nodes still get their previous document.
    waiting = next(n for n in names if n not in handed)
    assert (await fleet.config(waiting))["agents"][0]["args"] == ["1"]

    await fleet.configs.report(handed[0], new, "applied", "")
    assert sum(fleet.configs.hash_for(n) == new for n in names) == 3
    await fleet.configs.report(handed[1], new, "failed", "boom")  # 1 of 2 reported failed: 50% > 30%
    view = fleet.configs.rollout_view("p")
    assert view is not None and view["paused"] is True
    assert sum(fleet.configs.hash_for(n) == new for n in names) == 3
    assert await fleet.policies.refresh()  # the halt is stored (other replicas see it)
    assert fleet.policies.get("p").rollout_paused
    assert sum(fleet.configs.hash_for(n) == new for n in names) == 3

    # A Manager restart keeps the rollout halted: nodes that did not run the new revision
    # wait, handed no hash (they keep what they run), and get their old document nowhere.
    for n in names:
        if fleet.configs.hash_for(n) == old:
            await fleet.configs.report(n, old, "applied", "")
    restarted = Fleet(fleet.store)
    await restarted.nodes.start()
    await restarted.policies.start()
    try:
        view = restarted.configs.rollout_view("p")
        assert view is not None and view["paused"] and view["waiting"] == 3 and view["failed"] == 1
        assert sum(restarted.configs.hash_for(n) == new for n in names) == 3
        assert sum(restarted.configs.hash_for(n) == "" for n in names) == 3
        held = next(n for n in names if restarted.configs.hash_for(n) == "")
        assert await restarted.configs.get(held, "daemon") == (b"", "")
    finally:
        await restarted.policies.stop()
        await restarted.nodes.stop()

    await fleet.policies.resume("p")
    assert sum(fleet.configs.hash_for(n) == new for n in names) == 4
    for n in names:
        if fleet.configs.hash_for(n) == new:
            await fleet.configs.report(n, new, "applied", "")
    assert all(fleet.configs.hash_for(n) == new for n in names)
    assert fleet.configs.rollout_view("p") is None


async def test_silent_nodes_leave_the_rollout_window_after_the_timeout(fleet: Fleet) -> None:
    names = ["a", "b", "c"]
    for name in names:
        await fleet.register(name, env="prod")
    await fleet.policies.apply(doc("p", {"env": "prod"}, agent("beat", "1")), "x")
    old = fleet.configs.hash_for("a")
    rollout = {"max_parallel": 1}
    await fleet.policies.apply(doc("p", {"env": "prod"}, agent("beat", "2"), rollout=rollout), "x")
    assert sum(fleet.configs.hash_for(n) != old for n in names) == 1
    fleet.configs.expire_rollouts(3600)  # not yet
    assert sum(fleet.configs.hash_for(n) != old for n in names) == 1
    fleet.configs.expire_rollouts(-1)  # everything handed so far is overdue: the next node goes
    assert sum(fleet.configs.hash_for(n) != old for n in names) == 2
    view = fleet.configs.rollout_view("p")
    assert view is not None and view["timed_out"] == 1 and view["failed"] == 0 and not view["paused"]


async def test_state_changes_reach_the_timeline_hook_once(fleet: Fleet) -> None:
    seen: list[tuple[str, str, str, str]] = []

    async def on_state(node_id: str, config_hash: str, state: str, error: str) -> None:
        seen.append((node_id, config_hash[:4], state, error))

    fleet.configs.on_state = on_state
    await fleet.register("n1", env="canary")
    await fleet.policies.apply(doc("p", {"env": "canary"}, agent("beat")), "x")
    digest = fleet.configs.hash_for("n1")
    await fleet.configs.report("n1", digest, "applying", "")
    await fleet.configs.report("n1", digest, "failed", "exit code 1")
    await fleet.configs.report("n1", digest, "failed", "exit code 1")  # a repeat is no new event
    assert seen == [("n1", digest[:4], "applying", ""), ("n1", digest[:4], "failed", "exit code 1")]
