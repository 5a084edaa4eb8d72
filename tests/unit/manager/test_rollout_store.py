"""The rollout store's resume from halted, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsfleet.manager.domain import Rollout, RolloutNode, RolloutNodeState, RolloutState
from opsfleet.manager.store.rollouts_sql import SqlRolloutStore
from opsfleet.manager.store.sql import SqlStore


async def test_resume_halted_only_from_halted_and_sets_the_threshold(
    database_url: str, manager_config: Callable[..., Any]
) -> None:
    sql = SqlStore(manager_config(database_url).database_url())
    await sql.start()
    try:
        store = SqlRolloutStore(sql)
        draft = Rollout(0, "agent:a", "2", 1, {}, "1", 0, 0.0, RolloutState.RUNNING, "", "ops", 1.0, 1.0)
        created = await store.insert_rollout(
            draft, [RolloutNode(0, "n1", 0, False, RolloutNodeState.PENDING)]
        )
        assert await store.resume_halted(created.id, 50.0, "resumed", 2.0) is None  # running, not halted
        await store.set_rollout_state(created.id, RolloutState.HALTED, "halted", 3.0)
        resumed = await store.resume_halted(created.id, 50.0, "resumed", 4.0)
        assert resumed is not None
        assert (resumed.state, resumed.pause_on_failure, resumed.message, resumed.updated_at) == (
            RolloutState.RUNNING,
            50.0,
            "resumed",
            4.0,
        )
        assert await store.get_rollout(created.id) == resumed
        assert await store.resume_halted(created.id, 60.0, "again", 5.0) is None
    finally:
        await sql.close()
