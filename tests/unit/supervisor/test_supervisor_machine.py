"""The agent state machine, driven through the Supervisor over a FakeSpawner (no real processes)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable
from opsfleet.daemon.supervisor import AgentSpec, AgentStatus, Supervisor
from opsfleet.daemon.supervisor.fakes import FakeSpawner

S = AgentStatus
Start = Callable[..., Awaitable[tuple[Supervisor, FakeSpawner]]]
MakeSpec = Callable[..., AgentSpec]
Eventually = Callable[..., Awaitable[Any]]


def state(sup: Supervisor, agent_id: str = "a") -> AgentStatus:
    return sup.agent(agent_id).state


async def test_start_runs_enabled_agents_in_order_with_env_and_argv(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    sup, spawner = await fake_supervisor(
        make_spec("b", args=["--x"], env={"K": "v"}, version="1.2"),
        make_spec("a"),
        make_spec("off", enabled=False),
    )
    assert [child.argv for child in spawner.children] == [["/usr/bin/agent", "--x"], ["/usr/bin/agent"]]
    env = spawner.children[0].env
    assert env["K"] == "v"
    assert env["OPSFLEET_AGENT_ID"] == "b"
    assert env["OPSFLEET_HEARTBEAT_URL"] == f"http://127.0.0.1:{sup.heartbeat_port}/heartbeat"
    assert sup.heartbeat_port > 0
    await eventually(lambda: state(sup, "a") is S.RUNNING and state(sup, "b") is S.RUNNING)
    views = sup.agents()
    assert [v.id for v in views] == ["a", "b", "off"]
    b = views[1]
    assert (b.status, b.pid, b.version, b.type) == ("running", spawner.children[0].pid, "1.2", "custom")
    assert b.start_time > 0 and b.restart_count == 0
    assert (views[2].status, views[2].pid, views[2].start_time) == ("stopped", 0, 0)


async def test_agents_inherit_the_environment_but_not_the_daemon_settings(
    fake_supervisor: Start, make_spec: MakeSpec
) -> None:
    env = {"PATH": "/bin", "OPSFLEET_GRPC__PORT": "1", "OPSFLEET_AGENT_ID": "spoofed"}
    _, spawner = await fake_supervisor(make_spec("a", env={"PATH": "/opt/bin"}), base_env=env)
    child_env = spawner.last.env
    assert child_env["PATH"] == "/opt/bin"
    assert child_env["OPSFLEET_AGENT_ID"] == "a"
    assert "OPSFLEET_GRPC__PORT" not in child_env


async def test_crash_restarts_after_backoff_and_records_the_reason(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    sup, spawner = await fake_supervisor(make_spec("a"))
    await eventually(lambda: state(sup) is S.RUNNING)
    spawner.last.exit(3)
    await eventually(lambda: len(spawner.children) == 2 and state(sup) is S.RUNNING)
    view = sup.agent("a")
    assert (view.restart_count, view.last_exit_reason) == (1, "exit code 3")
    spawner.last.exit(-signal.SIGSEGV)
    await eventually(lambda: len(spawner.children) == 3)
    assert sup.restart_reasons("a") == ["exit code 3", "killed by signal SIGSEGV"]


async def test_crash_loop_ends_in_failed_after_max_retries(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    sup, spawner = await fake_supervisor(make_spec("a", start_seconds=0.2, restart={"max_retries": 2}))
    for expected_children in (1, 2, 3):
        await eventually(lambda n=expected_children: len(spawner.children) == n and not spawner.last.exited)
        spawner.last.exit(3)
    await eventually(lambda: state(sup) is S.FAILED)
    view = sup.agent("a")
    assert view.status == "error"
    assert view.restart_count == 2
    assert view.last_exit_reason == "exit code 3; gave up after 2 restarts within 300s"
    # An operator's start gives it a fresh budget.
    await sup.operate("a", "start", timeout=5)
    assert state(sup) is S.RUNNING and len(spawner.children) == 4


async def test_a_stable_run_resets_the_restart_budget(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="opsfleet.daemon.supervisor")
    sup, spawner = await fake_supervisor(make_spec("a", restart={"max_retries": 1, "stable_after": 0.2}))
    await eventually(lambda: state(sup) is S.RUNNING)
    spawner.last.exit(1)
    await eventually(lambda: len(spawner.children) == 2 and state(sup) is S.RUNNING)
    await eventually(lambda: any("restart budget reset" in m for m in caplog.messages))
    spawner.last.exit(1)  # a second crash, but not within the same unstable stretch
    await eventually(lambda: len(spawner.children) == 3 and state(sup) is S.RUNNING)


@pytest.mark.parametrize(
    ("policy", "code", "final", "reason"),
    [
        ("never", 0, S.STOPPED, "exit code 0; restart policy never"),
        ("never", 2, S.FAILED, "exit code 2; restart policy never"),
        ("on-failure", 0, S.STOPPED, "exit code 0; restart policy on-failure"),
    ],
)
async def test_policies_that_do_not_restart(
    fake_supervisor: Start,
    make_spec: MakeSpec,
    eventually: Eventually,
    policy: str,
    code: int,
    final: AgentStatus,
    reason: str,
) -> None:
    sup, spawner = await fake_supervisor(make_spec("a", restart={"policy": policy}))
    await eventually(lambda: state(sup) is S.RUNNING)
    spawner.last.exit(code)
    await eventually(lambda: state(sup) is final)
    assert sup.agent("a").last_exit_reason == reason
    assert len(spawner.children) == 1


async def test_on_failure_restarts_non_zero_exits(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    sup, spawner = await fake_supervisor(make_spec("a", restart={"policy": "on-failure"}))
    await eventually(lambda: state(sup) is S.RUNNING)
    spawner.last.exit(-signal.SIGKILL)
    await eventually(lambda: len(spawner.children) == 2)
    assert sup.agent("a").last_exit_reason == "killed by signal SIGKILL"


async def test_operate_start_stop_restart(fake_supervisor: Start, make_spec: MakeSpec) -> None:
    sup, spawner = await fake_supervisor(make_spec("a", enabled=False))
    assert state(sup) is S.STOPPED and spawner.children == []
    await sup.operate("a", "stop", timeout=5)  # stop of stopped: nothing happens
    await sup.operate("a", "start", timeout=5)
    assert state(sup) is S.RUNNING and len(spawner.children) == 1
    await sup.operate("a", "start", timeout=5)  # start of running: nothing happens
    assert len(spawner.children) == 1
    first = spawner.last
    await sup.operate("a", "restart", timeout=5)
    assert first.signals == [signal.SIGTERM]
    assert state(sup) is S.RUNNING and len(spawner.children) == 2
    assert sup.agent("a").restart_count == 1
    assert sup.agent("a").last_exit_reason == "restart requested (killed by signal SIGTERM)"
    await sup.operate("a", "stop", timeout=5)
    assert state(sup) is S.STOPPED and spawner.last.signals == [signal.SIGTERM]
    assert sup.agent("a").last_exit_reason == "stop requested (killed by signal SIGTERM)"


async def test_operate_rejects_bad_requests(fake_supervisor: Start, make_spec: MakeSpec) -> None:
    sup, _ = await fake_supervisor(make_spec("a"))
    with pytest.raises(InvalidArgument, match="operation"):
        await sup.operate("a", "reboot", timeout=5)
    with pytest.raises(InvalidArgument, match="operation"):
        await sup.operate("missing", "reboot", timeout=5)  # the operation is checked first
    with pytest.raises(NotFound):
        await sup.operate("missing", "start", timeout=5)
    with pytest.raises(InvalidArgument, match="malformed"):
        await sup.operate("bad id", "start", timeout=5)
    with pytest.raises(NotFound):
        sup.resource_history("missing", 60)
    with pytest.raises(NotFound):
        sup.tail_logs("missing", 10)


async def test_operate_times_out_but_the_operation_goes_on(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    sup, _ = await fake_supervisor(make_spec("a", enabled=False, start_seconds=0.5))
    with pytest.raises(DeadlineExceeded, match=r"did not finish within 0\.05s"):
        await sup.operate("a", "start", timeout=0.05)
    assert state(sup) is S.STARTING
    await eventually(lambda: state(sup) is S.RUNNING)
    with pytest.raises(DeadlineExceeded):
        await sup.operate("a", "stop", timeout=0)


async def test_stop_while_starting_fails_the_pending_start(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    sup, _ = await fake_supervisor(make_spec("a", enabled=False, start_seconds=5))
    start = asyncio.create_task(sup.operate("a", "start", timeout=10))
    await eventually(lambda: state(sup) is S.STARTING)
    await sup.operate("a", "stop", timeout=5)
    with pytest.raises(Unavailable, match="did not reach running"):
        await start


async def test_sigterm_ignored_means_sigkill_after_stop_timeout(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    spawner = FakeSpawner()
    spawner.ignore_term = True
    sup, _ = await fake_supervisor(make_spec("a", stop_timeout=0.1), spawner=spawner)
    await eventually(lambda: state(sup) is S.RUNNING)
    await sup.operate("a", "stop", timeout=5)
    assert spawner.last.signals == [signal.SIGTERM, signal.SIGKILL]
    assert sup.agent("a").last_exit_reason == "stop requested (killed by signal SIGKILL)"


async def test_spawn_failure_backs_off_then_fails(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    spawner = FakeSpawner()
    spawner.fail_with = FileNotFoundError(2, "No such file or directory")
    sup, _ = await fake_supervisor(make_spec("a", restart={"max_retries": 1}), spawner=spawner)
    await eventually(lambda: state(sup) is S.FAILED)
    reason = sup.agent("a").last_exit_reason
    assert reason.startswith("cannot execute /usr/bin/agent: No such file or directory")
    with pytest.raises(Unavailable, match="did not reach running: failed"):
        await sup.operate("a", "start", timeout=5)


async def test_heartbeat_timeout_restarts(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    spec = make_spec("a", health_check={"heartbeat_timeout": 0.15, "interval": 0.05})
    sup, spawner = await fake_supervisor(spec)
    await eventually(lambda: len(spawner.children) >= 2)
    assert spawner.children[0].signals == [signal.SIGTERM]
    assert sup.restart_reasons("a")[0].startswith("heartbeat timeout: none for")


async def test_manual_stop_survives_a_daemon_restart(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    first, _ = await fake_supervisor(make_spec("a"), make_spec("b"))
    await first.operate("a", "stop", timeout=5)
    await first.stop()
    second, spawner = await fake_supervisor(make_spec("a"), make_spec("b"))
    assert [child.env["OPSFLEET_AGENT_ID"] for child in spawner.children] == ["b"]
    assert state(second, "a") is S.STOPPED
    await second.operate("a", "start", timeout=5)
    await second.stop()
    _, spawner = await fake_supervisor(make_spec("a"), make_spec("b"))
    assert len(spawner.children) == 2  # the operator's start cleared the stop


async def test_stop_is_graceful_idempotent_and_silent_afterwards(tmp_path: Path, make_spec: MakeSpec) -> None:
    changes: list[int] = []
    spawner = FakeSpawner()
    sup = Supervisor(
        [make_spec("a"), make_spec("b", restart={"backoff_base": 30, "backoff_max": 30})],
        state_dir=tmp_path,
        log_dir=tmp_path,
        spawner=spawner,
        on_change=lambda: changes.append(1),
    )
    await sup.stop()  # before start: fine
    sup = Supervisor(
        [make_spec("a"), make_spec("b", restart={"backoff_base": 30, "backoff_max": 30})],
        state_dir=tmp_path,
        log_dir=tmp_path,
        spawner=spawner,
        on_change=lambda: changes.append(1),
    )
    await sup.start()
    spawner.children[1].exit(1)  # b goes into a 30 s backoff; stop must not wait for it
    await sup.stop()
    await sup.stop()
    assert {v.status for v in sup.agents()} == {"stopped"}
    assert all(child.exited for child in spawner.children)
    seen = len(changes)
    assert seen > 0
    with pytest.raises(Unavailable):
        await sup.operate("a", "start", timeout=1)
    assert len(changes) == seen


async def test_reload_adds_removes_and_replaces_agents(
    fake_supervisor: Start, make_spec: MakeSpec, eventually: Eventually
) -> None:
    sup, spawner = await fake_supervisor(make_spec("keep"), make_spec("drop"), make_spec("change"))
    keep, drop, change = spawner.children
    await sup.reload([make_spec("keep"), make_spec("change", args=["-v"]), make_spec("new")])
    assert [v.id for v in sup.agents()] == ["change", "keep", "new"]
    assert not keep.exited and drop.exited and change.exited
    assert [child.argv for child in spawner.children[3:]] == [["/usr/bin/agent", "-v"], ["/usr/bin/agent"]]
