"""kill -9 of a daemon supervising agents, then a restart on the same work dir.

The agents outlive the killed daemon (reparented to PID 1). The restarted daemon must stop
those leftovers before it starts the agents again, so that exactly one process of each agent
runs afterwards; and it must never signal a process whose pid merely matches its records.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest

from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.helpers import assert_eventually, free_port
from tests.processes import Proc

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"

CONFIG = """
manager:
  address: 127.0.0.1:{manager_port}
  reconnect_interval: 200ms
collectors:
  cpu: {{interval: 1s}}
  memory: {{enabled: false}}
  disk: {{enabled: false}}
  network: {{enabled: false}}
agent_defaults:
  binary_path: {python}
  start_seconds: 300ms
  stop_timeout: 3s
  restart: {{backoff_base: 100ms, backoff_max: 200ms}}
agents:
  - id: web
    args: ["-m", "opsfleet.sample_agent", "--port", "{web_port}", "--log-interval", "3600",
           "--heartbeat-interval", "3600"]
    work_dir: {work}/web
    start_seconds: 1s       # probes begin once running: time to listen on a busy host
    health_check: {{interval: 300ms, http_url: "http://127.0.0.1:{web_port}/health"}}
  - id: fw
    args: ["-u", "{forever}", "--interval", "3600"]
    work_dir: {work}/fw
"""

AGENTS = {"web": "opsfleet.sample_agent", "fw": "forever.py"}


def agent_pids(work: Path, agent_id: str) -> list[int]:
    """Live processes of ``agent_id``: its command line, in its own (test-unique) work_dir."""
    marker = AGENTS[agent_id]
    pids = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE or info["cwd"] != str(work / agent_id):
            continue
        if any(arg.endswith(marker) for arg in info["cmdline"] or []):
            pids.append(proc.pid)
    return sorted(pids)


def record_path(work: Path, agent_id: str) -> Path:
    return work / "daemon" / "agents" / "agents" / f"{agent_id}.json"


class Daemon:
    """`opsfleet daemon` on the test's config and work dir, and its DaemonService."""

    def __init__(self, tmp_path: Path) -> None:
        self.work = tmp_path
        self.web_port = free_port()
        self.config = tmp_path / "daemon.yaml"
        self.config.write_text(
            CONFIG.format(
                manager_port=free_port(),
                python=sys.executable,
                web_port=self.web_port,
                work=tmp_path,
                forever=PROGRAMS / "forever.py",
            )
        )
        for agent_id in AGENTS:
            (tmp_path / agent_id).mkdir()
        self.procs: list[Proc] = []

    async def start(self) -> Proc:
        proc = await Proc.start(
            [
                *("daemon", "--config", str(self.config)),
                *("--work-dir", str(self.work / "daemon"), "--listen", "127.0.0.1:0"),
            ]
        )
        self.procs.append(proc)
        return proc

    async def agents(self, proc: Proc) -> dict[str, Any]:
        port = await proc.grpc_port()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = daemon_pb2_grpc.DaemonServiceStub(channel)
            reply = await stub.ListAgents(daemon_pb2.ListAgentsRequest(), timeout=5)
        return {agent.id: agent for agent in reply.agents}

    async def healthy(self) -> bool:
        async with httpx.AsyncClient(trust_env=False) as client:
            try:
                response = await client.get(f"http://127.0.0.1:{self.web_port}/health", timeout=2)
            except httpx.HTTPError:
                return False
        return response.status_code == 200

    async def all_running_once(self, proc: Proc) -> dict[str, Any]:
        """Both agents running, each with exactly one process: the one the daemon reports."""
        try:
            agents = await self.agents(proc)
        except grpc.aio.AioRpcError as exc:
            raise AssertionError(f"ListAgents: {exc.code().name}") from exc
        assert set(agents) == set(AGENTS), sorted(agents)  # empty until the supervisor started
        for agent_id in AGENTS:
            agent = agents[agent_id]
            assert agent.status == "running", (agent_id, agent.status)
            assert agent_pids(self.work, agent_id) == [agent.pid], (agent_id, agent.pid)
        assert await self.healthy()
        return agents


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    holder = Daemon(tmp_path)
    yield holder
    for proc in holder.procs:
        await proc.stop(signal.SIGTERM)
    for agent_id in AGENTS:  # whatever a failing test left behind
        for pid in agent_pids(tmp_path, agent_id):
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()


@pytest.fixture
def unrelated(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process that has nothing to do with the daemon (in its own session, like an agent)."""
    proc = subprocess.Popen(
        [sys.executable, "-u", str(PROGRAMS / "forever.py"), "--interval", "3600"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdout.readline()  # running its own code by now
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)
    proc.stdout.close()


async def test_agents_run_exactly_once_after_kill9_of_the_daemon(daemon: Daemon) -> None:
    first = await daemon.start()
    before = await assert_eventually(lambda: daemon.all_running_once(first), timeout=20)
    old = {agent_id: before[agent_id].pid for agent_id in AGENTS}

    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    for agent_id, pid in old.items():  # the agents outlived their daemon
        assert agent_pids(daemon.work, agent_id) == [pid]

    second = await daemon.start()
    after = await assert_eventually(lambda: daemon.all_running_once(second), timeout=20)
    for agent_id, pid in old.items():
        assert after[agent_id].pid != pid
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    await second.wait_for_line(r"agent web: pid \d+ \(process group \d+\) was left running")
    # Still exactly one of each a while later (a second copy of web would crash on its port).
    await second.wait_for_line(r"agent fw: starting -> running")
    for _ in range(3):
        agents = await daemon.all_running_once(second)
        assert (agents["web"].pid, agents["fw"].pid) == (after["web"].pid, after["fw"].pid)
        assert agents["web"].restart_count == agents["fw"].restart_count == 0
        await assert_eventually(daemon.healthy)


async def test_a_recorded_pid_reused_by_another_process_is_not_signalled(
    daemon: Daemon, unrelated: subprocess.Popen[bytes]
) -> None:
    first = await daemon.start()
    before = await assert_eventually(lambda: daemon.all_running_once(first), timeout=20)
    await first.stop(signal.SIGKILL)
    # The leftover of fw dies on its own and its pid is handed to an unrelated process: the
    # record now names a live pid and process group, but another process start time.
    old_fw = psutil.Process(before["fw"].pid)
    old_fw.kill()
    old_fw.wait(5)
    path = record_path(daemon.work, "fw")
    meta = json.loads(path.read_text())
    assert meta["process"]["pid"] == before["fw"].pid
    meta["process"].update(pid=unrelated.pid, pgid=unrelated.pid)
    path.write_text(json.dumps(meta))

    second = await daemon.start()
    await assert_eventually(lambda: daemon.all_running_once(second), timeout=20)
    await second.wait_for_line(rf"agent fw: pid {unrelated.pid} recorded by a previous daemon is gone")
    assert unrelated.poll() is None
    assert psutil.Process(unrelated.pid).status() != psutil.STATUS_ZOMBIE
