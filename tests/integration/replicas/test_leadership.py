"""Leader election on PostgreSQL: one advisory-lock holder, re-elected when it goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest

from opsfleet.manager.store.leader_pg import LEADER_LOCK_KEY, LEASE, PgAdvisoryLeader
from tests.helpers import assert_eventually

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
async def leaders(database_url: str) -> AsyncIterator[list[PgAdvisoryLeader]]:
    made = [PgAdvisoryLeader(database_url, retry_interval=0.2, check_interval=0.2) for _ in range(3)]
    for leader in made:
        await leader.start()
    yield made
    for leader in made:
        await leader.stop()


def _leaders(candidates: list[PgAdvisoryLeader]) -> list[PgAdvisoryLeader]:
    return [c for c in candidates if c.is_leader]


async def test_one_leader_and_reelection_on_stop(leaders: list[PgAdvisoryLeader]) -> None:
    (first,) = await assert_eventually(lambda: _leaders(leaders), timeout=5)
    changes: list[bool] = []
    first.add_listener(changes.append)
    await first.stop()
    assert not first.is_leader and changes == [False]
    rest = [c for c in leaders if c is not first]
    (second,) = await assert_eventually(lambda: _leaders(rest), timeout=3)
    assert second.elections == 1


async def test_lost_connection_ends_leadership_at_once(
    leaders: list[PgAdvisoryLeader], database_url: str
) -> None:
    (first,) = await assert_eventually(lambda: _leaders(leaders), timeout=5)
    conn = await asyncpg.connect(database_url)
    try:
        # The leader's session is the one holding the advisory lock.
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objid = $1::bigint % 4294967296 "
            # Only this test's database: tests running in parallel hold the same lock key in theirs.
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            LEADER_LOCK_KEY,
        )
        assert killed == 1
    finally:
        await conn.close()
    await assert_eventually(lambda: not first.is_leader, timeout=2)
    # Somebody (perhaps the same replica, reconnected) is elected again, and only one.
    await assert_eventually(lambda: len(_leaders(leaders)) == 1, timeout=5)


async def test_leadership_is_a_lease(database_url: str) -> None:
    """A leader whose loop did not confirm the lock for LEASE seconds (a stopped process that
    runs again) is not the leader for the code asking, before its loop notices anything."""
    now = [1000.0]
    leader = PgAdvisoryLeader(database_url, retry_interval=0.2, check_interval=0.2, clock=lambda: now[0])
    await leader.start()
    try:
        await assert_eventually(lambda: leader.is_leader, timeout=5)
        now[0] += LEASE + 1  # as if the process had been stopped that long
        assert not leader.is_leader
        await assert_eventually(lambda: leader.is_leader, timeout=2)  # confirmed again
    finally:
        await leader.stop()
