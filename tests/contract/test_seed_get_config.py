"""A seed-contract client's GetConfig(node_id, "daemon") returns the node's effective config as YAML."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from grpc_tools import protoc

from tests.processes import Proc

SEED_DIR = Path(__file__).parent / "seed_proto"
PASSWORD = "contract-pass-123"


@pytest.fixture(scope="module")
def seed_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seedgen")
    args = ["protoc", f"-I{SEED_DIR}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main([*args, "seed_manager.proto", "seed_daemon.proto"]) == 0
    return out


async def seed_get_config(modules: Path, port: int, node_id: str, label: str) -> dict[str, object]:
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "seed_get_config.py"),
        f"127.0.0.1:{port}",
        node_id,
        label,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(modules)},
    )
    stdout, _ = await asyncio.wait_for(client.communicate(), 60)
    assert client.returncode == 0
    result: dict[str, object] = json.loads(stdout)
    return result


async def test_get_config_returns_effective_yaml(seed_modules: Path, tmp_path: Path) -> None:
    proc = await Proc.start(
        [
            "manager",
            "--insecure",  # the seed client speaks plaintext gRPC
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path),
        ],
        env={"OPSFLEET_AUTH__ADMIN_PASSWORD": PASSWORD},
    )
    try:
        port = await proc.grpc_port()
        http = int((await proc.wait_for_line(r"HTTP listening on \S+:(\d+)")).group(1))
        policy = {
            "name": "web-logs",
            "selector": {"role": "web"},
            "priority": 5,
            "config": {
                "agents": [{"id": "filebeat", "type": "filebeat", "binary_path": "/usr/bin/filebeat"}],
                "collectors": {"cpu": {"interval": "15s"}},
            },
        }
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}/api/v1") as api:
            login = await api.post("/auth/login", json={"username": "admin", "password": PASSWORD})
            token = login.json()["data"]["token"]
            created = await api.post("/policies", json=policy, headers={"Authorization": f"Bearer {token}"})
            assert created.status_code == 200, created.text

        web = await seed_get_config(seed_modules, port, "seed-web", "role=web")
        assert web["success"] is True
        document = yaml.safe_load(str(web["config_data"]))
        assert document["agents"][0]["id"] == "filebeat"
        assert document["agents"][0]["binary_path"] == "/usr/bin/filebeat"
        assert document["collectors"] == {"cpu": {"interval": "15s"}}

        other = await seed_get_config(seed_modules, port, "seed-db", "role=db")
        assert other == {"success": True, "config_data": ""}
    finally:
        assert await proc.stop() == 0
