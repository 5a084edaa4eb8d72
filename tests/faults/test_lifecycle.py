"""Crash policy: a dead background task fails its waiting callers and stops the process non-zero.

Before the policy was wired, a crashed group-commit writer left its callers waiting until
their deadline, and the Manager or Daemon went on running without the task: nothing exited,
so no supervisor restarted anything.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.common.errors import Unavailable
from opsfleet.common.lifecycle import EXIT_CRASHED, Crashes, TaskOwner, crash_scope
from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import load_daemon_config
from opsfleet.manager.app import ManagerApp
from opsfleet.manager.services.batching import GroupCommitter
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.store.sql import SqlStore
from tests.faults.outages import Manager, recent_timestamps
from tests.helpers import assert_eventually
from tests.processes import Proc

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
PROMPTLY = 3.0  # seconds; the callers' deadline is 10 s


class Fatal(BaseException):
    """An error no loop catches (BaseException, as a bug in a driver could raise)."""


def recorder() -> tuple[list[tuple[str, BaseException]], Callable[[str, BaseException], None]]:
    seen: list[tuple[str, BaseException]] = []
    return seen, lambda name, exc: seen.append((name, exc))


async def test_tasks_report_crashes_to_the_scope_they_were_spawned_in() -> None:
    seen, handler = recorder()
    outer = TaskOwner("outer")
    inner = TaskOwner("inner")
    own, own_handler = recorder()
    explicit = TaskOwner("explicit", on_crash=own_handler)

    async def crash() -> None:
        raise RuntimeError("boom")

    async def spawn_later() -> None:  # a task started by a task of the scope
        inner.spawn("child", crash())

    with crash_scope(handler):
        outer.spawn("parent", spawn_later())
        explicit.spawn("own", crash())
    outside = TaskOwner("outside")
    outside.spawn("free", crash())
    await assert_eventually(lambda: len(seen) == 1 and len(own) == 1)
    await asyncio.sleep(0.05)
    assert [name for name, _ in seen] == ["inner:child"]
    assert [name for name, _ in own] == ["explicit:own"]
    for owner in (outer, inner, explicit, outside):
        await owner.stop()


async def test_dead_writer_fails_waiting_callers_at_once_and_reports_the_crash() -> None:
    release = asyncio.Event()

    async def commit(items: Sequence[int]) -> list[int]:
        await release.wait()
        return list(items)

    def observe(rows: int, seconds: float) -> None:
        raise Fatal("observer bug")

    seen, handler = recorder()
    writer: GroupCommitter[int, int] = GroupCommitter("w", commit, max_batch=2, max_queued=100)
    writer.observer = observe
    with crash_scope(handler):
        await writer.start()
    callers = [asyncio.create_task(writer.submit(i)) for i in range(5)]  # one batch writing, three queued
    await assert_eventually(lambda: writer.queued == 3)
    started = time.monotonic()
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), PROMPTLY)
    assert time.monotonic() - started < PROMPTLY
    for result in results:
        assert isinstance(result, Unavailable) and result.retry_after, result
    with pytest.raises(Unavailable):
        await writer.submit(9)
    assert [(name, type(exc)) for name, exc in seen] == [("w:writer", Fatal)]
    await writer.stop()


class FlushCrashStore(SqlStore):
    """A real SQLite store whose heartbeat write raises what the flush loop does not catch."""

    async def touch_nodes(self, seen: Mapping[str, float]) -> tuple[list[str], list[str]]:
        raise Fatal("driver bug")


async def test_crashed_heartbeat_flush_is_reported(tmp_path: Path) -> None:
    store = FlushCrashStore(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await store.start()
    nodes = NodeService(store, offline_after=60, flush_interval=0.05)
    crashes = Crashes("test")
    try:
        with crash_scope(crashes.report):
            await nodes.start()
        nodes.seen("n1")
        await asyncio.wait_for(crashes.wait(), PROMPTLY)
        assert crashes.first is not None and crashes.first[0] == "nodes:heartbeat-flusher"
    finally:
        nodes._pending.clear()  # the store cannot write them; stop() would flush
        await nodes.stop()
        await store.close()


async def test_manager_with_a_dead_writer_answers_unavailable_and_exits_non_zero(
    manager_config: Callable[..., Any], tmp_path: Path
) -> None:
    app = ManagerApp(manager_config(f"sqlite:///{tmp_path / 'm.db'}"))
    stop = asyncio.Event()
    run = asyncio.create_task(app.run(stop))
    try:
        await assert_eventually(lambda: app.http_port > 0 or run.done())
        m = Manager(app)
        assert (await m.register("n1")).code == grpc.StatusCode.OK

        def observe(rows: int, seconds: float) -> None:
            raise RuntimeError("telemetry bug")

        app.metrics.batch_observer = observe
        calls = [m.report("n1", recent_timestamps(10, start=100 * i), timeout=10.0) for i in range(5)]
        for result in await asyncio.gather(*calls):
            assert result.code == grpc.StatusCode.UNAVAILABLE, result
            assert result.seconds < PROMPTLY and result.retry_ms, result
        assert await asyncio.wait_for(asyncio.shield(run), 15) == EXIT_CRASHED
        assert app.crashes.first is not None and app.crashes.first[0] == "metrics writer:writer"
        await m.http.aclose()
        await m.channel.close()
    finally:
        stop.set()
        await asyncio.wait_for(run, 15)


async def test_manager_process_exits_non_zero_after_a_crash(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLEET_")}
    env |= {"OPSFLEET_ADMIN_PASSWORD": "fleet-keeper-2718", "OPSFLEET_GRPC__SHUTDOWN_GRACE": "1"}
    flags = ["--insecure", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    flags += ["--database-url", f"sqlite:///{tmp_path / 'm.db'}", "--data-dir", str(tmp_path / "d")]
    proc = Proc(
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(PROGRAMS / "manager_writer_crash.py"),
            *flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    )
    try:
        port = await proc.grpc_port()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        from opsfleet.proto import manager_pb2, manager_pb2_grpc

        stub = manager_pb2_grpc.ManagerServiceStub(channel)
        await stub.RegisterNode(manager_pb2.RegisterNodeRequest(node_id="n1", hostname="h", ip="10.0.0.1"))
        metric = manager_pb2.MetricData(
            type="cpu", timestamp=int(time.time()) - 60, values={"usage_percent": 1}
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ReportMetrics(
                manager_pb2.ReportMetricsRequest(node_id="n1", metrics=[metric]), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await channel.close()
        code = await proc.wait(timeout=20)
    finally:
        await proc.stop()
    assert code == EXIT_CRASHED, proc.output
    assert "background task metrics writer:writer crashed" in proc.output
    assert proc.lines[-1].endswith("stopped"), proc.output


async def test_daemon_stops_its_agents_and_exits_non_zero_after_a_crash(
    manager_config: Callable[..., Any], tmp_path: Path
) -> None:
    manager = ManagerApp(manager_config(f"sqlite:///{tmp_path / 'm.db'}"))
    await manager.start()
    agent = {
        "id": "alpha",
        "type": "custom",
        "binary_path": sys.executable,
        "args": [str(PROGRAMS / "forever.py"), "--interval", "0.2"],
        "start_seconds": 0.3,
        "stop_timeout": 3,
    }
    settings = {
        "manager.address": f"127.0.0.1:{manager.grpc_port}",
        "daemon.work_dir": str(tmp_path / "daemon"),
        "daemon.grpc_host": "127.0.0.1",
        "daemon.grpc_port": 0,
        "collectors.cpu.interval": 1.0,
        "agents": [agent],
    }
    daemon = DaemonApp(load_daemon_config(None, {}, settings))
    stop = asyncio.Event()
    run = asyncio.create_task(daemon.run(stop))
    try:
        pid = await assert_eventually(lambda: agent_pid(daemon), timeout=15)
        log = tmp_path / "daemon" / "logs" / "alpha.log"
        await assert_eventually(lambda: log.is_file() and "line 000001" in log.read_text(), timeout=15)
        assert daemon.outbox is not None
        await daemon.outbox.close()  # the spool fails under the sampler: its task dies
        assert await asyncio.wait_for(asyncio.shield(run), 20) == EXIT_CRASHED
        assert daemon.crashes.first is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert "bye" in log.read_text()  # stopped with SIGTERM in the normal order, not killed
    finally:
        stop.set()
        await asyncio.wait_for(run, 20)
        await manager.stop()


def agent_pid(daemon: DaemonApp) -> int:
    """The pid of agent alpha once it runs, else 0."""
    if daemon.supervisor is None or daemon.outbox is None:
        return 0
    try:
        return daemon.supervisor.agent("alpha").pid
    except Unavailable:  # the supervisor is still starting
        return 0
