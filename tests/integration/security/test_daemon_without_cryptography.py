"""An enrolled daemon speaks mTLS both ways and never loads the ``cryptography`` package.

It reads its certificate's identity and validity, checks its TLS files and the Manager's
identity on DaemonService calls without it (``cryptography`` is for making keys: enroll
and renewal). The real ``opsfleet daemon`` process runs under ``python -X importtime``,
which lists every module it imported from start to stop.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.packaging.footprint import imported_modules
from tests.integration.security.support import Fleet
from tests.processes import Proc

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"


async def test_enrolled_daemon_serves_and_registers_without_cryptography(
    fleet: Fleet, tmp_path: Path
) -> None:
    await fleet.enroll("lean-1", await fleet.token())
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"""
manager:
  address: 127.0.0.1:{fleet.app.grpc_port}
agents:
  - id: worker
    type: custom
    binary_path: {sys.executable}
    args: ["{PROGRAMS / "forever.py"}", "--interval", "1"]
"""
    )
    argv = [
        "daemon",
        "--config",
        str(config),
        "--work-dir",
        str(fleet.root / "lean-1"),
        "--listen",
        "127.0.0.1:0",
        "--node-id",
        "lean-1",
    ]
    proc = await Proc.start(argv, env={"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        await proc.wait_for_line(r"registered with manager \S+ as lean-1")
        await proc.wait_for_line(r"agent worker: .*running")
        # The Manager dials the daemon's DaemonService over mTLS: the daemon checks the
        # Manager's certificate identity on the call.
        reply = await fleet.http.post("/api/v1/nodes/lean-1/agents/sync", headers=await fleet.admin())
        assert reply.status_code == 200, reply.text
        assert "worker" in reply.text
    finally:
        assert await proc.stop() == 0, proc.output
    modules = imported_modules(proc.lines)
    assert {"opsfleet.daemon.rpc.auth", "opsfleet.common.tls_reload", "opsfleet.daemon.renewal"} <= modules
    assert sorted(m for m in modules if m.split(".")[0] == "cryptography") == []
