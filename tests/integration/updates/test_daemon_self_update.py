"""Daemon self-update with two real daemon versions: hand-over by exec, then a rollback.

The "new versions" are copies of this source tree with another ``__version__`` (and, for the
bad one, an entry point that exits at once), installed into the daemon's work dir and run by
the same interpreter. The daemon is a real ``opsfleet daemon`` subprocess.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
import yaml

import opsfleet
from opsfleet import __version__
from opsfleet.common.signing import create_key_pair, sign
from opsfleet.manager.app import ManagerApp
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.helpers import assert_eventually
from tests.processes import Proc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEYS = create_key_pair()
SOURCE = Path(opsfleet.__file__).parent
GRACE = 8.0


def build_version(tmp: Path, version: str, *, exits_at_once: bool = False) -> bytes:
    """A .tar.gz with the ``opsfleet`` package of this tree, reporting ``version``."""
    root = tmp / f"build-{version}"
    shutil.copytree(
        SOURCE, root / "opsfleet", ignore=shutil.ignore_patterns("__pycache__", "static", "*.pyc", "apidocs")
    )
    init = root / "opsfleet" / "__init__.py"
    text = init.read_text()
    init.write_text(text.replace(f'__version__ = "{__version__}"', f'__version__ = "{version}"'))
    assert f'"{version}"' in init.read_text()
    if exits_at_once:
        (root / "opsfleet" / "__main__.py").write_text("import sys\nsys.exit(3)\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(root / "opsfleet", arcname="opsfleet")
    return buffer.getvalue()


def daemon_processes(config: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(config) in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture
async def manager(tmp_path: Path, manager_config: Callable[..., Any]) -> AsyncIterator[ManagerApp]:
    app = ManagerApp(manager_config(f"sqlite:///{tmp_path / 'm.db'}"))
    await app.start()
    yield app
    await app.stop()


async def node_version(manager: ManagerApp) -> str:
    node = await manager.store.get_node("self-1")
    return node.daemon_version if node is not None else ""


async def update_status(manager: ManagerApp) -> daemon_pb2.UpdateStatus | None:
    node = await manager.store.get_node("self-1")
    assert node is not None
    async with grpc.aio.insecure_channel(node.daemon_address) as channel:
        stub = daemon_pb2_grpc.DaemonServiceStub(channel)
        reply = await stub.GetUpdateStatus(daemon_pb2.UpdateStatusRequest(component="daemon"), timeout=5)
    return reply.updates[0] if reply.updates else None


async def push(manager: ManagerApp, version: str, data: bytes) -> daemon_pb2.UpdateResponse:
    node = await manager.store.get_node("self-1")
    assert node is not None
    digest = hashlib.sha256(data).hexdigest()
    request = daemon_pb2.UpdateRequest(
        component="daemon",
        version=version,
        hash=digest,
        signature=sign(KEYS.private_pem, "daemon", version, digest),
        update_data=data,
    )
    async with grpc.aio.insecure_channel(node.daemon_address) as channel:
        reply: daemon_pb2.UpdateResponse = await daemon_pb2_grpc.DaemonServiceStub(channel).PushUpdate(
            request, timeout=10
        )
    return reply


async def test_self_update_hands_over_and_a_version_that_dies_is_rolled_back(
    tmp_path: Path, manager: ManagerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)  # not "under systemd": the watchdog restarts
    config = tmp_path / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "daemon": {
                    "id": "self-1",
                    "work_dir": str(tmp_path / "work"),
                    "grpc_host": "127.0.0.1",
                    "grpc_port": 0,
                },
                "manager": {"address": f"127.0.0.1:{manager.grpc_port}", "heartbeat_interval": "1s"},
                "collectors": {k: {"enabled": False} for k in ("cpu", "memory", "disk", "network")},
                "update": {"trusted_keys": [KEYS.public_b64], "daemon_grace_period": f"{GRACE}s"},
            }
        )
    )
    good = build_version(tmp_path, "9.0.0")
    bad = build_version(tmp_path, "9.0.1", exits_at_once=True)
    proc = await Proc.start(["daemon", "--config", str(config)])
    try:
        await assert_eventually(lambda: node_version(manager), timeout=20)
        assert await node_version(manager) == __version__
        pid = proc.proc.pid

        reply = await push(manager, "9.0.0", good)
        assert reply.success and "accepted" in reply.message

        async def on_9_0_0() -> bool:
            return await node_version(manager) == "9.0.0"

        await assert_eventually(on_9_0_0, timeout=30, interval=0.2)

        async def settled() -> daemon_pb2.UpdateStatus | None:
            found = await update_status(manager)
            return found if found is not None and found.finished_at else None

        status = await assert_eventually(settled, timeout=10)
        assert (status.state, status.version, status.previous_version) == ("done", "9.0.0", __version__)
        assert proc.proc.returncode is None and proc.proc.pid == pid  # the same process, exec'd
        work = tmp_path / "work" / "versions" / "daemon"
        assert (work / "9.0.0" / "opsfleet" / "__init__.py").is_file()
        assert not (work / "trial.json").exists()

        reply = await push(manager, "9.0.1", bad)
        assert reply.success
        assert await proc.wait(timeout=20) == 3  # the new version dies at once

        async def rolled_back() -> daemon_pb2.UpdateStatus | None:
            if await node_version(manager) != "9.0.0":
                return None
            try:
                found = await update_status(manager)
            except grpc.aio.AioRpcError:
                return None
            return found if found is not None and found.state == "rolled_back" else None

        status = await assert_eventually(rolled_back, timeout=GRACE + 30, interval=0.3)
        assert status.version == "9.0.1" and "did not register" in status.message
        assert "rolled back to 9.0.0" in status.message
        assert (work / "current").resolve().name == "9.0.0"
    finally:
        await proc.stop()
        for leftover in daemon_processes(config):
            leftover.terminate()
        psutil.wait_procs(daemon_processes(config), timeout=10)
