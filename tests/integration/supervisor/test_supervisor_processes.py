"""Agent lifecycles with real child processes: crashes, restarts, operations, SIGKILL, logs."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from opsfleet.common.errors import Unavailable
from opsfleet.daemon.supervisor import AgentSpec, AgentStatus, Supervisor
from tests.integration.supervisor.conftest import texts

S = AgentStatus
Program = Callable[..., AgentSpec]
Start = Callable[..., Awaitable[Supervisor]]
Eventually = Callable[..., Awaitable[Any]]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_crash_restarts_with_backoff_and_records_exit_code(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    sup = await supervisor(program("crash", "crash.py", "--after", "0.05", "--code", "3"))
    pids: set[int] = set()

    def restarted_twice() -> bool:
        if sup.agent("crash").pid:
            pids.add(sup.agent("crash").pid)
        return sup.agent("crash").restart_count >= 2

    await eventually(restarted_twice)
    view = sup.agent("crash")
    assert view.last_exit_reason == "exit code 3"
    assert sup.restart_reasons("crash")[:2] == ["exit code 3", "exit code 3"]
    assert len(pids) >= 2
    await eventually(lambda: len(texts(sup.tail_logs("crash", 100, "crashing soon"))) >= 2)
    assert "exiting with 3" in texts(sup.tail_logs("crash", 100))


async def test_crash_loop_ends_in_failed(supervisor: Start, program: Program, eventually: Eventually) -> None:
    sup = await supervisor(program("loop", "crash.py", "--after", "0", restart={"max_retries": 2}))
    await eventually(lambda: sup.agent("loop").state is S.FAILED)
    view = sup.agent("loop")
    assert (view.status, view.pid, view.restart_count) == ("error", 0, 2)
    assert view.last_exit_reason == "exit code 3; gave up after 2 restarts within 300s"
    assert len(texts(sup.tail_logs("loop", 100, "crashing soon"))) == 3


async def test_start_stop_restart_real_processes(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    sup = await supervisor(program("f", "forever.py", enabled=False))
    assert sup.agent("f").status == "stopped"
    await sup.operate("f", "start", timeout=10)
    first = sup.agent("f")
    assert first.status == "running" and psutil.pid_exists(first.pid)
    await eventually(lambda: texts(sup.tail_logs("f", 1, "line")))  # its SIGTERM handler is installed
    await sup.operate("f", "restart", timeout=10)
    second = sup.agent("f")
    assert second.status == "running" and second.pid != first.pid
    assert gone(first.pid)
    assert second.last_exit_reason == "restart requested (exit code 0)"

    def second_printed() -> bool:  # a line after the first process's "bye"
        tail = texts(sup.tail_logs("f", 1000))
        return "bye" in tail and any("line" in line for line in tail[tail.index("bye") :])

    await eventually(second_printed)  # its SIGTERM handler is installed
    await sup.operate("f", "stop", timeout=10)
    stopped = sup.agent("f")
    assert (stopped.status, stopped.pid, stopped.start_time) == ("stopped", 0, 0)
    assert stopped.last_exit_reason == "stop requested (exit code 0)"
    assert gone(second.pid)
    assert texts(sup.tail_logs("f", 1)) == ["bye"]


async def test_manual_stop_is_not_undone_by_health_checks(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    silent = {"health_check": {"heartbeat_timeout": 0.2, "interval": 0.05}}
    # Neither agent sends heartbeats: the witness keeps being restarted for missing them.
    sup = await supervisor(
        program("held", "forever.py", **silent), program("witness", "forever.py", **silent)
    )
    await eventually(lambda: sup.agent("held").status == "running")
    await sup.operate("held", "stop", timeout=10)
    await eventually(lambda: sup.agent("witness").restart_count >= 3, timeout=20)
    held = sup.agent("held")
    assert (held.status, held.restart_count) == ("stopped", 0)
    assert sup.restart_reasons("witness")[0].startswith("heartbeat timeout: none for")


async def test_agent_ignoring_sigterm_is_killed_after_stop_timeout(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    sup = await supervisor(program("stubborn", "ignore_term.py", stop_timeout=0.3))
    await eventually(lambda: texts(sup.tail_logs("stubborn", 1)) == ["ready"])
    pid = sup.agent("stubborn").pid
    began = time.monotonic()
    await sup.operate("stubborn", "stop", timeout=10)
    assert time.monotonic() - began >= 0.3
    view = sup.agent("stubborn")
    assert view.status == "stopped"
    assert view.last_exit_reason == "stop requested (killed by signal SIGKILL)"
    assert gone(pid)


async def test_stop_reaches_the_whole_process_group(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    spec = replace(
        program("shell", "forever.py"), binary_path="/bin/sh", args=["-c", "sleep 30 & echo started; wait"]
    )
    sup = await supervisor(spec)
    await eventually(lambda: texts(sup.tail_logs("shell", 1)) == ["started"])
    shell = psutil.Process(sup.agent("shell").pid)
    helpers = await eventually(shell.children)
    await sup.operate("shell", "stop", timeout=10)
    assert all(gone(helper.pid) for helper in helpers)


async def test_spawn_failures_fail_with_the_reason(
    supervisor: Start, program: Program, eventually: Eventually, tmp_path: Path
) -> None:
    ghost = program("ghost", "forever.py", binary_path="/nonexistent/agent", restart={"max_retries": 1})
    sup = await supervisor(ghost)
    await eventually(lambda: sup.agent("ghost").state is S.FAILED)
    assert (
        "cannot execute /nonexistent/agent: No such file or directory" in sup.agent("ghost").last_exit_reason
    )
    with pytest.raises(Unavailable):
        await sup.operate("ghost", "start", timeout=10)
    (tmp_path / "plain-file").write_text("")
    nowhere = program("nowhere", "forever.py", work_dir=str(tmp_path / "plain-file" / "dir"))
    await sup.reload([ghost, nowhere])
    assert sup.agent("ghost").state is S.FAILED  # unchanged agents are left alone
    await eventually(lambda: sup.agent("nowhere").state is S.FAILED)
    view = sup.agent("nowhere")
    work_dir = tmp_path / "plain-file" / "dir"
    assert view.last_exit_reason == f"cannot create work_dir '{work_dir}': Not a directory"
    assert view.restart_count == 0  # a configuration problem: no restart storm


async def test_logs_rotate_without_losing_lines_and_tail_spans_files(
    supervisor: Start, program: Program, eventually: Eventually, tmp_path: Path
) -> None:
    count = 3000
    spec = program(
        "chatty", "forever.py", "--count", str(count), "--size", "80", log_max_bytes=16384, log_backups=40
    )
    sup = await supervisor(spec)
    last = f"line {count - 1:06d} "
    await eventually(lambda: texts(sup.tail_logs("chatty", 1, last)))
    log_dir = tmp_path / "logs"
    files = sorted(log_dir.glob("chatty.log*"), key=lambda p: -int(p.suffix[1:]) if p.suffix != ".log" else 0)
    assert len(files) >= 10
    assert all(path.stat().st_size <= 16384 for path in files)
    written = texts([line for path in files for line in path.read_text().splitlines()])
    numbers = [int(m.group(1)) for line in written if (m := re.match(r"line (\d{6}) x*$", line))]
    assert numbers == list(range(count))
    tail = texts(sup.tail_logs("chatty", 500, "line "))
    assert [int(line[5:11]) for line in tail] == list(range(count - 500, count))
    assert texts(sup.tail_logs("chatty", 1, "line 000123 ")) == ["line 000123 ".ljust(80, "x")]
