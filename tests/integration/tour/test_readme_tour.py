"""README tour step 4, run as written: the shipped configs, the commands of the README's code
block through ``sh`` in a directory holding ``configs/`` and ``.venv``. Only the ports move
(to free ones, so parallel runs do not collide); the sample agent must come up and stay healthy."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import assert_eventually
from tests.processes import Proc

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "tour-Passw0rd-42"
SAMPLE_PORT = 9101  # fixed by configs/daemon.yaml


def readme_step4() -> list[str]:
    """The shell commands of the README tour's step 4 (continuations joined, comments dropped)."""
    text = (ROOT / "README.md").read_text()
    step = text.split("\n4. ", 1)[1].split("\n5. ", 1)[0]
    block = step.split("```", 2)[1]
    commands: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = re.sub(r"\s+#.*$", "", pending + line).strip()
        pending = ""
        commands.append(line)
    return commands


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the agent's HTTP server
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_readme_lists_the_four_commands() -> None:
    commands = readme_step4()
    assert [c.split()[:2] for c in commands] == [
        [".venv/bin/opsfleet", "manager"],
        [".venv/bin/opsfleet", "tokens"],
        [".venv/bin/opsfleet", "daemon"],
        [".venv/bin/opsfleet", "daemon"],
    ]


async def test_readme_step4_runs_a_healthy_sample_agent(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "opsfleet").exists():
        pytest.skip("no .venv/bin/opsfleet in the checkout (run `make install`)")
    if not _port_free(SAMPLE_PORT):
        pytest.skip(f"port {SAMPLE_PORT} of configs/daemon.yaml's sample agent is taken")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    http, grpc_port, enroll_port, daemon_port = (_free_port() for _ in range(4))
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",  # no opsfleet on $PATH: the configs must not need one
        "OPSFLEET_CLI_CONFIG": str(tmp_path / "cli.json"),
        "OPSFLEET_ADMIN_PASSWORD": PASSWORD,
        "OPSFLEET_SERVER__HOST": "127.0.0.1",
        "OPSFLEET_SERVER__PORT": str(http),
        "OPSFLEET_GRPC__PORT": str(grpc_port),
        "OPSFLEET_ENROLLMENT__PORT": str(enroll_port),
        "OPSFLEET_DAEMON__GRPC_PORT": str(daemon_port),
    }

    def as_here(command: str) -> str:
        return command.replace("127.0.0.1:9090", f"127.0.0.1:{grpc_port}").replace(
            "127.0.0.1:9092", f"127.0.0.1:{enroll_port}"
        )

    manager_cmd, token_cmd, enroll_cmd, daemon_cmd = (as_here(c) for c in readme_step4())
    procs: list[Proc] = []
    try:
        manager = await Proc.shell(manager_cmd, env=env, cwd=tmp_path)
        procs.append(manager)
        await manager.wait_for_line(r"REST API|http|listening", timeout=60)
        login = await Proc.shell(
            f".venv/bin/opsfleet login --server http://127.0.0.1:{http} --username admin --password-stdin",
            env=env,
            cwd=tmp_path,
            stdin=(PASSWORD + "\n").encode(),
        )
        assert await login.wait(60) == 0, login.output
        tokens = await Proc.shell(token_cmd, env=env, cwd=tmp_path)
        assert await tokens.wait(60) == 0, tokens.output
        token = tokens.lines[0].strip()
        enroll = await Proc.shell(enroll_cmd.replace("<token>", token), env=env, cwd=tmp_path)
        assert await enroll.wait(60) == 0, enroll.output
        daemon = await Proc.shell(daemon_cmd, env=env, cwd=tmp_path)
        procs.append(daemon)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}/api/v1", timeout=10) as api:
            answer = (await api.post("/auth/login", json={"username": "admin", "password": PASSWORD})).json()
            api.headers["Authorization"] = f"Bearer {answer['data']['token']}"
            node_ids: list[str] = []

            async def node_registered() -> bool:
                listing = (await api.get("/nodes")).json()["data"]["list"]
                assert listing, daemon.output
                node_ids[:] = [n["node_id"] for n in listing]
                return True

            await assert_eventually(node_registered, timeout=60, interval=0.5)
            sample: dict[str, Any] = {}

            async def sample_running() -> bool:
                agents = (await api.post(f"/nodes/{node_ids[0]}/agents/sync")).json()["data"]["agents"]
                found = {a["agent_id"]: a for a in agents}
                assert found.get("sample", {}).get("status") == "running", (agents, daemon.output)
                sample.update(found["sample"])
                return True

            await assert_eventually(sample_running, timeout=60, interval=0.5)
            first_pid = sample["pid"]
            assert first_pid > 0

            async def logs_ticking() -> bool:
                lines = (await api.get(f"/nodes/{node_ids[0]}/agents/sample/logs")).json()["data"]["lines"]
                assert sum("tick" in str(line) for line in lines) >= 3, lines
                return True

            await assert_eventually(logs_ticking, timeout=30, interval=0.5)
            async with httpx.AsyncClient(timeout=5) as probe:
                assert (await probe.get(f"http://127.0.0.1:{SAMPLE_PORT}/health")).text == "ok"
            await sample_running()
            assert sample["pid"] == first_pid and sample["restart_count"] == 0, sample
    finally:
        for proc in reversed(procs):
            await proc.stop()
    assert (tmp_path / "data" / "daemon" / "node_id").exists()
