"""PostgreSQL drops the Manager's connections while metrics flow, or refuses them for a while.

Every call ends OK or UNAVAILABLE with a retry delay (never UNKNOWN), /ready is 503 while
the database refuses connections, the Manager recovers by itself (pool pre-ping,
reconnect), and every acknowledged sample is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import grpc
import pytest

from tests.conftest import POSTGRES_ADMIN_URL
from tests.faults.outages import (
    Manager,
    Outcome,
    recent_timestamps,
    start_manager,  # noqa: F401 (fixture)
)
from tests.helpers import assert_eventually

NODES = 4
BATCH = 10
KILLS = 3
CALLS_AFTER_LAST_KILL = 3


async def terminate_backends(database: str, *, allow_connections: bool | None = None) -> int:
    """Terminate every connection to ``database``; how many there were.

    With ``allow_connections`` set, first allow or refuse new connections to it."""
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        if allow_connections is not None:
            await conn.execute(
                f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow_connections).lower()}'
            )
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return len(rows)


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_connection_loss_is_unavailable_then_recovers(
    database_url: str,
    start_manager: Callable[..., Any],  # noqa: F811
) -> None:
    m: Manager = await start_manager(database_url)
    database = database_url.rsplit("/", 1)[1]
    nodes = [f"pg-{i}" for i in range(NODES)]
    for node in nodes:
        assert (await m.register(node)).code == grpc.StatusCode.OK
    outcomes: list[Outcome] = []
    acked: dict[str, set[int]] = {node: set() for node in nodes}
    kills_done = asyncio.Event()
    terminated = 0

    async def traffic(node: str) -> None:
        offset, after_last_kill = 0, 0
        while after_last_kill < CALLS_AFTER_LAST_KILL:
            stamps = recent_timestamps(BATCH, start=offset)
            offset += BATCH
            result = await m.report(node, stamps, timeout=10.0)
            outcomes.append(result)
            if result.code == grpc.StatusCode.OK:
                acked[node].update(stamps)
                if kills_done.is_set():
                    after_last_kill += 1
            else:
                await asyncio.sleep(min(result.retry_ms or 100, 200) / 1000)

    async def killer() -> None:
        nonlocal terminated

        def total() -> int:
            return sum(len(v) for v in acked.values())

        for _ in range(KILLS):
            target = total() + BATCH * NODES
            await assert_eventually(lambda: total() > target)  # noqa: B023 (awaited in this iteration)
            terminated += await terminate_backends(database)
        kills_done.set()

    await asyncio.wait_for(asyncio.gather(killer(), *(traffic(node) for node in nodes)), timeout=60)

    assert terminated > 0
    codes = {o.code for o in outcomes}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, [
        o for o in outcomes if o.code not in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    ]
    for o in outcomes:
        if o.code == grpc.StatusCode.UNAVAILABLE:
            assert o.retry_ms is not None and o.retry_ms > 0, o
    for node in nodes:
        assert await m.stored(node) >= acked[node], node
    await assert_eventually(lambda: _is(m.ready(), 200), timeout=10)
    print(
        f"calls {len(outcomes)}, unavailable {sum(o.code != grpc.StatusCode.OK for o in outcomes)}, "
        f"backends terminated {terminated}, samples acked {sum(len(v) for v in acked.values())}"
    )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_database_down_is_unavailable_and_not_ready_until_it_is_back(
    database_url: str,
    start_manager: Callable[..., Any],  # noqa: F811
) -> None:
    m: Manager = await start_manager(database_url)
    database = database_url.rsplit("/", 1)[1]
    assert (await m.register("pg-down")).code == grpc.StatusCode.OK
    before = recent_timestamps(20)
    assert (await m.report("pg-down", before)).code == grpc.StatusCode.OK
    try:
        await terminate_backends(database, allow_connections=False)
        for start in (1000, 2000):
            result = await m.report("pg-down", recent_timestamps(20, start=start), timeout=10.0)
            assert result.code == grpc.StatusCode.UNAVAILABLE, result
            assert result.retry_ms is not None and result.retry_ms > 0, result
        await assert_eventually(lambda: _is(m.ready(), 503), timeout=10, message="/ready 503 while down")
    finally:
        await terminate_backends(database, allow_connections=True)
    await assert_eventually(lambda: _is(m.ready(), 200), timeout=10, message="/ready 200 once back")
    after = recent_timestamps(20, start=5000)
    assert (await m.report("pg-down", after)).code == grpc.StatusCode.OK
    assert await m.stored("pg-down") == set(before) | set(after)
