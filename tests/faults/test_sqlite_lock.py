"""Another process holds SQLite's write lock: writes fail fast with a retry delay, /ready is 503.

Before the bounded lock wait, every write hung in SQLite's busy handler (30 s) until the
client's deadline (DEADLINE_EXCEEDED, no retry hint) and /ready stayed 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from tests.faults.outages import (
    ADMIN_PASSWORD,
    Manager,
    assert_stays_not_ready,
    integrity_ok,
    recent_timestamps,
    start_manager,  # noqa: F401 (fixture)
)
from tests.helpers import assert_eventually

LOCK_TIMEOUT = 0.5
# Within the bound: a write waits for its turn in the process, then for SQLite's lock,
# each at most LOCK_TIMEOUT; a report queued behind a failing batch waits for one more.
WITHIN = 6.0  # generous: the machine running the tests may be loaded

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
conn.close()
"""


@contextlib.asynccontextmanager
async def write_lock_held(db: Path) -> AsyncIterator[None]:
    """Another process holds the database's write lock (BEGIN IMMEDIATE) inside the block."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(db),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        line = await asyncio.wait_for(holder.stdout.readline(), 10)
        assert line.strip() == b"locked", line
        yield
    finally:
        holder.stdin.close()
        try:
            await asyncio.wait_for(holder.wait(), 10)
        except TimeoutError:
            holder.kill()
            await holder.wait()


async def test_held_lock_answers_unavailable_then_recovers(
    start_manager: Callable[..., Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    db = tmp_path / "locked.db"
    m: Manager = await start_manager(f"sqlite:///{db}", database__lock_timeout=LOCK_TIMEOUT)
    assert (await m.register("n1")).code == grpc.StatusCode.OK
    before = recent_timestamps(50)
    assert (await m.report("n1", before)).code == grpc.StatusCode.OK
    login = await m.http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    admin = {"Authorization": f"Bearer {login.json()['data']['token']}"}
    refused = [recent_timestamps(20, start=1000 + 100 * i) for i in range(4)]

    async with write_lock_held(db):
        calls = [m.report("n1", batch, timeout=8.0) for batch in refused]
        results = await asyncio.gather(*calls, m.register("n2", timeout=8.0))
        for result in results:
            assert result.code == grpc.StatusCode.UNAVAILABLE, result
            assert result.retry_ms is not None and result.retry_ms > 0, result
            assert result.seconds < WITHIN, result
        user = await m.http.post(
            "/api/v1/admin/users",
            json={"username": "ops", "password": "password-123", "role": "viewer"},
            headers=admin,
        )
        assert user.status_code == 503, user.text
        assert int(user.headers["Retry-After"]) >= 1
        await assert_eventually(lambda: _is(m.ready(), 503), timeout=5, message="/ready 503 while locked")
        await assert_stays_not_ready(m)
        # A write transaction that changes nothing commits even now: no evidence for /ready.
        assert await m.app.store.mark_offline(0.0, time.time()) == []
        assert await m.ready() == 503

    await assert_eventually(lambda: _is(m.ready(), 200), timeout=10, message="/ready 200 after release")
    after = recent_timestamps(30, start=5000)
    assert (await m.report("n1", after)).code == grpc.StatusCode.OK
    assert (await m.register("n2")).code == grpc.StatusCode.OK
    assert await m.stored("n1") == set(before) | set(after)
    assert (await m.app.store.get_node("n2")) is not None
    assert integrity_ok(db)


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)
