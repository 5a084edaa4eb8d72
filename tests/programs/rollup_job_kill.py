"""Run the rollup job on a database in small steps and kill -9 this process inside the
transaction of one step, after it wrote rollup rows and before it moved the watermark.

Usage: ``rollup_job_kill.py <database url> <now> <step>``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from opsfleet.manager.services.metric_rollups import RollupJob
from opsfleet.manager.store import metric_rollups_sql
from opsfleet.manager.store.sql import SqlStore


async def main(url: str, now: float, kill_at: int) -> None:
    metric_rollups_sql.POINT_BUDGET = 30
    metric_rollups_sql.NODE_GROUP = 2
    store = SqlStore(url)
    await store.start()
    job = store.rollup_job
    original = job._write_mark
    calls = 0

    async def write_mark(conn: Any, mark: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        await original(conn, mark)

    job._write_mark = write_mark  # type: ignore[method-assign]
    await RollupJob(job, clock=lambda: now).run_pass()
    print("the pass ended before step", kill_at, file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
