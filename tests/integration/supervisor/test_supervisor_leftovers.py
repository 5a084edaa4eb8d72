"""Agent processes a killed daemon left running are stopped before the agents start again.

The leftovers here are started by the test itself, in their own session like an agent, and
recorded in the agent's metadata file the way a daemon records a running agent; what a real
``kill -9`` of the daemon leaves behind is covered in tests/faults/test_daemon_kill9.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from opsfleet.daemon.supervisor import AgentSpec, AgentStatus, Supervisor
from opsfleet.daemon.supervisor.metadata import ProcessRecord
from opsfleet.daemon.supervisor.orphans import identify, is_recorded_process

S = AgentStatus
Program = Callable[..., AgentSpec]
Start = Callable[..., Awaitable[Supervisor]]
Eventually = Callable[..., Awaitable[Any]]
Leftover = Callable[..., subprocess.Popen[bytes]]

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"


@pytest.fixture
def leftover() -> Iterator[Leftover]:
    """Start a test program in its own session (as an agent runs) and wait for its first line
    (its signal handlers are set up by then); all are killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str, *args: str, cwd: Path, new_session: bool = True) -> subprocess.Popen[bytes]:
        cwd.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-u", str(PROGRAMS / script), *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=new_session,
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline()
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def record(tmp_path: Path, agent_id: str, process: ProcessRecord) -> None:
    """What a daemon writes when it starts an agent (and a kill -9 leaves in place)."""
    path = tmp_path / "state" / "agents" / f"{agent_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {"pid": process.pid, "pgid": process.pgid, "create_time": process.create_time}
    path.write_text(json.dumps({"process": fields}))


def recorded(tmp_path: Path, agent_id: str) -> Any:
    return json.loads((tmp_path / "state" / "agents" / f"{agent_id}.json").read_text()).get("process")


def agent_pids(script: str, cwd: Path) -> list[int]:
    """Live processes running ``script`` in ``cwd`` (the work_dir is unique to the test)."""
    pids = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE or info["cwd"] != str(cwd):
            continue
        if any(arg.endswith(script) for arg in info["cmdline"] or []):
            pids.append(proc.pid)
    return pids


async def test_a_leftover_is_stopped_and_exactly_one_process_runs(
    supervisor: Start, program: Program, leftover: Leftover, eventually: Eventually, tmp_path: Path
) -> None:
    work = tmp_path / "fw"
    old = leftover("forever.py", "--interval", "3600", cwd=work)
    old_record = identify(old.pid)
    assert old_record is not None and old_record.pgid == old.pid
    record(tmp_path, "fw", old_record)

    sup = await supervisor(program("fw", "forever.py", "--interval", "3600", work_dir=str(work)))
    assert old.wait(5) == 0  # it got SIGTERM (forever.py exits 0 on it) before the new one started
    await eventually(lambda: sup.agent("fw").state is S.RUNNING)
    new_pid = sup.agent("fw").pid
    assert agent_pids("forever.py", work) == [new_pid]
    assert recorded(tmp_path, "fw")["pid"] == new_pid

    await sup.stop()
    assert recorded(tmp_path, "fw") is None  # a clean stop leaves nothing to clean up


async def test_a_leftover_that_ignores_sigterm_is_killed_after_stop_timeout(
    supervisor: Start, program: Program, leftover: Leftover, eventually: Eventually, tmp_path: Path
) -> None:
    work = tmp_path / "stubborn"
    old = leftover("ignore_term.py", cwd=work)
    old_record = identify(old.pid)
    assert old_record is not None
    record(tmp_path, "stubborn", old_record)
    sup = await supervisor(program("stubborn", "ignore_term.py", work_dir=str(work), stop_timeout=0.5))
    assert old.wait(5) == -signal.SIGKILL
    await eventually(lambda: sup.agent("stubborn").state is S.RUNNING)
    assert agent_pids("ignore_term.py", work) == [sup.agent("stubborn").pid]


async def test_a_leftover_of_an_agent_removed_from_the_config_is_stopped(
    supervisor: Start, program: Program, leftover: Leftover, tmp_path: Path
) -> None:
    old = leftover("forever.py", "--interval", "3600", cwd=tmp_path / "gone")
    old_record = identify(old.pid)
    assert old_record is not None
    record(tmp_path, "removed", old_record)
    await supervisor(program("other", "forever.py", "--interval", "3600", work_dir=str(tmp_path / "o")))
    assert old.wait(5) == 0
    assert recorded(tmp_path, "removed") is None


async def test_a_recorded_pid_now_used_by_another_process_is_left_alone(
    supervisor: Start, program: Program, leftover: Leftover, eventually: Eventually, tmp_path: Path
) -> None:
    work = tmp_path / "fw"
    # Same pid and process group as recorded, but started at another time: a reused pid.
    unrelated = leftover("forever.py", "--interval", "3600", cwd=work)
    real = identify(unrelated.pid)
    assert real is not None
    record(tmp_path, "fw", ProcessRecord(real.pid, real.pgid, real.create_time - 3600))

    sup = await supervisor(program("fw", "forever.py", "--interval", "3600", work_dir=str(work)))
    await eventually(lambda: sup.agent("fw").state is S.RUNNING)
    assert unrelated.poll() is None
    assert sorted(agent_pids("forever.py", work)) == sorted([unrelated.pid, sup.agent("fw").pid])


def test_a_process_is_recognised_only_with_its_start_time_and_group(
    leftover: Leftover, tmp_path: Path
) -> None:
    proc = leftover("forever.py", "--interval", "3600", cwd=tmp_path)
    real = identify(proc.pid)
    assert real is not None and is_recorded_process(real)
    assert not is_recorded_process(ProcessRecord(real.pid, real.pgid, real.create_time + 1))
    assert not is_recorded_process(ProcessRecord(real.pid, real.pgid + 1, real.create_time))
    in_our_group = leftover("forever.py", "--interval", "3600", cwd=tmp_path, new_session=False)
    mine = identify(in_our_group.pid)
    assert mine is not None and mine.pgid != in_our_group.pid
    assert not is_recorded_process(ProcessRecord(in_our_group.pid, in_our_group.pid, mine.create_time))
    proc.kill()
    proc.wait(5)
    assert not is_recorded_process(real)
