"""A client generated only from PROTOCOL.md's definitions talks to `opsfleet manager` run from the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpc_tools import protoc

from tests.processes import Proc

SEED_DIR = Path(__file__).parent / "seed_proto"


@pytest.fixture(scope="module")
def seed_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python modules generated from the seed-only .proto files (kept out of this process)."""
    out = tmp_path_factory.mktemp("seedgen")
    args = ["protoc", f"-I{SEED_DIR}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main([*args, "seed_manager.proto", "seed_daemon.proto"]) == 0
    return out


@pytest.fixture
async def manager_proc(tmp_path: Path) -> AsyncIterator[tuple[Proc, int]]:
    proc = await Proc.start(
        ["manager", "--insecure", "--grpc-listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")]
    )
    port = await proc.grpc_port()
    yield proc, port
    await proc.stop()


async def test_seed_client_against_cli_manager(seed_modules: Path, manager_proc: tuple[Proc, int]) -> None:
    proc, port = manager_proc
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "seed_client.py"),
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(seed_modules)},
    )
    stdout, _ = await asyncio.wait_for(client.communicate(), 60)
    assert client.returncode == 0
    result = json.loads(stdout)
    assert result == {
        "register": True,
        "heartbeat": True,
        "metrics": True,
        "assigned_id": result["assigned_id"],
        "daemon_heartbeat": True,
        "daemon_metrics": True,
        "config": True,
        "sync": True,
        "unknown_heartbeat": "NOT_FOUND",
    }
    assert result["assigned_id"]
    code = await proc.stop()
    assert code == 0
    assert "stopped" in proc.lines[-1], proc.output


async def test_config_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "manager.yaml"
    cfg.write_text("grpc:\n  port: 99999\nredis:\n  host: x\n")
    proc = await Proc.start(["manager", "--config", str(cfg)])
    assert await proc.wait() == 3
    assert "grpc.port" in proc.output
    assert "redis" in proc.output and "not used" in proc.output

    cfg.write_text("grpc:\n  prot: 9090\n")
    proc = await Proc.start(["manager", "--config", str(cfg)])
    assert await proc.wait() == 3
    assert "grpc.prot" in proc.output and "unknown key" in proc.output

    proc = await Proc.start(["manager", "--database-url", "mysql://x"])
    assert await proc.wait() == 3
    assert "database.url" in proc.output
