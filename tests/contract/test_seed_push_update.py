"""A client generated only from PROTOCOL.md pushes a signed agent update to a real daemon."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpc_tools import protoc

from opsfleet.common.signing import create_key_pair, sign
from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import load_daemon_config
from tests.integration.updates.support import agent_package, agent_spec

SEED_DIR = Path(__file__).parent / "seed_proto"
KEYS = create_key_pair()


@pytest.fixture(scope="module")
def seed_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seedgen")
    args = ["protoc", f"-I{SEED_DIR}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main([*args, "seed_daemon.proto"]) == 0
    return out


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonApp]:
    settings = {
        "manager.address": "127.0.0.1:1",
        "daemon.grpc_host": "127.0.0.1",
        "daemon.grpc_port": 0,
        "daemon.work_dir": str(tmp_path / "daemon"),
        "collectors.cpu.enabled": False,
        "collectors.memory.enabled": False,
        "collectors.disk.enabled": False,
        "collectors.network.enabled": False,
        "agents": [agent_spec("web", tmp_path)],
        "update.trusted_keys": [KEYS.public_b64],
        "update.grace_period": 1.0,
    }
    app = DaemonApp(load_daemon_config(None, {}, settings))
    await app.start()
    yield app
    await app.stop()


async def test_seed_client_push_update(seed_modules: Path, daemon: DaemonApp, tmp_path: Path) -> None:
    data = agent_package("2.0")
    package = tmp_path / "agent-2.0.tar.gz"
    package.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    signature = sign(KEYS.private_pem, "agent:web", "2.0", digest)
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "seed_update_client.py"),
        f"127.0.0.1:{daemon.grpc_port}",
        "agent:web",
        "2.0",
        str(package),
        digest,
        signature,
        "web",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(seed_modules)},
    )
    stdout, _ = await asyncio.wait_for(client.communicate(), 60)
    assert client.returncode == 0
    result = json.loads(stdout)
    assert result["success"] is True
    assert (result["version"], result["status"]) == ("2.0", "running")
    assert (tmp_path / "daemon" / "versions" / "agent:web" / "2.0" / "bin" / "agent.py").is_file()
