"""An installed agent version survives a config change (reload, or a central config applied).

The daemon's effective config (daemon.yaml with the central config laid over it) names the
package as ``{package_dir}``; every apply must resolve it to the installed version again,
or the agent would be restarted from the unresolved path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import DaemonConfig, load_daemon_config
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.helpers import assert_eventually
from tests.integration.updates.conftest import UPDATE_DAEMON
from tests.integration.updates.support import Signer, agent_package, agent_spec
from tests.integration.updates.test_agent_updates import agent_info, finished, running_code

Stub = daemon_pb2_grpc.DaemonServiceStub


def daemon_config(tmp_path: Path, marker_dir: Path, signer: Signer, **overrides: Any) -> DaemonConfig:
    settings = {
        **UPDATE_DAEMON,
        "daemon.work_dir": str(tmp_path / "daemon"),
        "agents": [agent_spec("web", marker_dir)],
        "update.trusted_keys": [signer.keys.public_b64],
        **overrides,
    }
    return load_daemon_config(None, {}, settings)


async def test_reload_keeps_the_installed_agent_version_running(
    tmp_path: Path, marker_dir: Path, signer: Signer, stub_for: Callable[[DaemonApp], Stub]
) -> None:
    configs = [daemon_config(tmp_path, marker_dir, signer)]
    app = DaemonApp(configs[0], reload_config=lambda: configs[-1])
    await app.start()
    try:
        stub = stub_for(app)
        request = signer.request("agent:web", "2", agent_package("2"))
        assert (await stub.PushUpdate(request, timeout=5)).success
        assert (await finished(stub)).state == "done"
        before = await agent_info(stub)
        assert (before.version, before.status) == ("2", "running")

        # A changed file (a collector interval) is laid under the central config and applied.
        configs.append(daemon_config(tmp_path, marker_dir, signer, **{"collectors.cpu.interval": 30.0}))
        await app.reload()

        async def settled() -> daemon_pb2.AgentInfo | None:
            info = await agent_info(stub)
            return info if info.status == "running" else None

        after = await assert_eventually(settled, timeout=10)
        assert (after.version, after.pid) == ("2", before.pid)  # not restarted, still version 2
        assert running_code(marker_dir, after.pid) == "2"
    finally:
        await app.stop()
