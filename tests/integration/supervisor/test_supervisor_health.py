"""Health checks, resource samples and persistence with real child processes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.errors import NotFound
from opsfleet.daemon.supervisor import AgentSpec, AgentStatus, Supervisor
from tests.integration.supervisor.conftest import texts

S = AgentStatus
Program = Callable[..., AgentSpec]
Start = Callable[..., Awaitable[Supervisor]]
Eventually = Callable[..., Awaitable[Any]]
MiB = 1024 * 1024


async def test_failing_http_probe_restarts_with_the_reason(
    supervisor: Start, program: Program, eventually: Eventually, free_port: Callable[[], int], tmp_path: Path
) -> None:
    port = free_port()
    fail_file = tmp_path / "fail"
    spec = program(
        "web",
        "health_server.py",
        "--port",
        str(port),
        "--fail-file",
        str(fail_file),
        health_check={"http_url": f"http://127.0.0.1:{port}/health", "failure_threshold": 2},
        start_seconds=1.5,  # checks begin once running: time for Python to listen on a busy host
    )
    sup = await supervisor(spec)
    await eventually(lambda: len(texts(sup.tail_logs("web", 10, '"GET /health HTTP/1.1" 200'))) >= 2)
    assert sup.agent("web").restart_count == 0
    fail_file.touch()
    await eventually(lambda: sup.agent("web").restart_count >= 1)
    reason = f"failed probe: GET http://127.0.0.1:{port}/health: HTTP 500 (2 times in a row)"
    assert sup.restart_reasons("web")[0] == reason
    fail_file.unlink()
    await eventually(lambda: sup.agent("web").status == "running")
    count = sup.agent("web").restart_count
    await eventually(lambda: len(texts(sup.tail_logs("web", 10, '"GET /health HTTP/1.1" 200'))) >= 4)
    assert sup.agent("web").restart_count == count


async def test_memory_above_threshold_restarts(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    spec = program(
        "hungry",
        "grow_memory.py",
        "--step",
        "20",
        "--max",
        "120",
        health_check={"memory_threshold": 60 * MiB, "threshold_duration": 0.3},
    )
    sup = await supervisor(spec)
    await eventually(lambda: sup.agent("hungry").restart_count >= 1)
    reason = sup.restart_reasons("hungry")[0]
    assert reason.startswith(f"memory above threshold {60 * MiB} bytes for ")
    assert max(p.memory_rss for p in sup.resource_history("hungry", 60)) > 60 * MiB


async def test_heartbeat_timeout_restarts_and_heartbeats_keep_an_agent_alive(
    supervisor: Start, program: Program, eventually: Eventually, free_port: Callable[[], int]
) -> None:
    port = free_port()
    sample_args = ["-m", "opsfleet.sample_agent", "--port", str(port)]
    sample_args += ["--log-interval", "0.1", "--heartbeat-interval", "0.1"]
    sample = program(
        "sample",
        "forever.py",
        args=sample_args,
        health_check={"heartbeat_timeout": 0.5, "http_url": f"http://127.0.0.1:{port}/health"},
        start_seconds=1.5,  # checks begin once running: time for the first heartbeat on a busy host
    )
    silent = program("silent", "forever.py", health_check={"heartbeat_timeout": 0.3})
    sup = await supervisor(sample, silent)
    await eventually(lambda: sup.agent("silent").restart_count >= 1)
    assert sup.restart_reasons("silent")[0].startswith("heartbeat timeout: none for")
    # Checks begin once the agent is running (start_seconds); from then on, ticks every 0.1 s
    # up to tick 30 (>= 3 s after start) run well past the 0.5 s heartbeat timeout.
    await eventually(lambda: sup.agent("sample").status == "running")
    await eventually(lambda: texts(sup.tail_logs("sample", 1, "tick 30")))
    view = sup.agent("sample")
    assert (view.status, view.restart_count) == ("running", 0)
    assert abs(view.last_heartbeat - time.time()) < 5
    await sup.operate("sample", "stop", timeout=10)
    assert texts(sup.tail_logs("sample", 1)) == ["sample agent sample stopped"]
    assert sup.agent("sample").last_exit_reason == "stop requested (exit code 0)"


async def test_resource_history_has_real_samples(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    sup = await supervisor(program("f", "forever.py"))
    pid = sup.agent("f").pid
    await eventually(lambda: len(sup.resource_history("f", 60)) >= 3)
    points = sup.resource_history("f", 3600)
    assert [p.timestamp for p in points] == sorted(p.timestamp for p in points)
    assert abs(points[-1].timestamp - time.time()) < 5
    for point in points:
        assert point.memory_rss > MiB and point.memory_vms >= point.memory_rss
        assert point.cpu >= 0 and point.open_files >= 0
        assert point.disk_read_bytes >= 0 and point.disk_write_bytes >= 0
    assert sup.agent("f").pid == pid
    assert sup.resource_history("f", 0) == []
    with pytest.raises(NotFound):
        sup.resource_history("nope", 60)


async def test_history_and_metadata_survive_a_supervisor_restart(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    specs = [program("f", "forever.py"), program("held", "forever.py")]
    first = await supervisor(*specs)
    await eventually(lambda: texts(first.tail_logs("f", 1, "line")))
    await first.operate("f", "restart", timeout=10)
    await first.operate("held", "stop", timeout=10)
    await eventually(lambda: len(first.resource_history("f", 3600)) >= 3)
    await first.stop()
    before = first.resource_history("f", 3600)
    log_before = texts(first.tail_logs("f", 1000))

    second = await supervisor(*specs)
    f, held = second.agent("f"), second.agent("held")
    assert f.restart_count == 1
    assert f.last_exit_reason.startswith("daemon stopping")
    assert (held.status, held.last_exit_reason) == ("stopped", "stop requested (exit code 0)")
    assert second.resource_history("f", 3600)[: len(before)] == before
    await eventually(lambda: len(texts(second.tail_logs("f", 10_000))) > len(log_before))
    assert texts(second.tail_logs("f", 10_000))[: len(log_before)] == log_before


async def test_sample_agent_runs_standalone_under_the_supervisor(
    supervisor: Start, program: Program, eventually: Eventually
) -> None:
    spec = replace(program("s", "forever.py"), args=["-m", "opsfleet.sample_agent"])
    sup = await supervisor(spec, base_env={})  # the daemon adds OPSFLEET_AGENT_ID and _HEARTBEAT_URL
    await eventually(lambda: texts(sup.tail_logs("s", 1, "tick 1")))
    assert texts(sup.tail_logs("s", 10, "started: http://127.0.0.1:"))
    await eventually(lambda: sup.agent("s").last_heartbeat > 0)
