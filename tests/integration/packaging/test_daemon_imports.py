"""The daemon loads nothing of the Manager, the client CLI or the simulator, nor their libraries.

Checked twice: importing the daemon's modules in a fresh interpreter, and a real
``opsfleet daemon`` process (with a supervised agent) run under ``python -X importtime``,
which lists every module the process imported from start to stop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.packaging.footprint import forbidden, imported_modules
from tests.processes import Proc

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"

IMPORT_DAEMON = """
import json, sys
from opsfleet.cli import build_parser
build_parser("daemon").parse_args(["daemon", "--manager", "127.0.0.1:1"])
import opsfleet.daemon.app, opsfleet.daemon.cli, opsfleet.daemon.enroll
print(json.dumps(sorted(sys.modules)))
"""


RUN_DAEMON = """
import json, sys
from opsfleet.cli import build_parser
build_parser("daemon").parse_args(["daemon", "--manager", "127.0.0.1:1"])
import opsfleet.daemon.app, opsfleet.daemon.cli, opsfleet.daemon.updates.selfupdate
print(json.dumps(sorted(sys.modules)))
"""


def test_running_daemon_modules_import_no_cryptography() -> None:
    """``cryptography`` is for making keys (enroll, renewal) and checking update signatures only."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_DAEMON], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout)
    assert {"opsfleet.daemon.app", "opsfleet.common.tls_reload", "opsfleet.daemon.renewal"} <= set(modules)
    assert [m for m in modules if m.split(".")[0] == "cryptography"] == []


def test_daemon_modules_import_no_manager_client_or_simulator() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_DAEMON], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout)
    assert "opsfleet.daemon.app" in modules
    assert forbidden(modules) == []


async def test_running_daemon_imports_no_manager_client_or_simulator(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"""
manager:
  address: 127.0.0.1:1
  reconnect_interval: 100ms
agents:
  - id: worker
    type: custom
    binary_path: {sys.executable}
    args: ["{PROGRAMS / "forever.py"}", "--interval", "1"]
    health_check:
      tcp_port: 1
"""
    )
    proc = await Proc.start(
        ["daemon", "--config", str(config), "--work-dir", str(tmp_path / "w"), "--listen", "127.0.0.1:0"],
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    try:
        await proc.wait_for_line(r"agent worker: .*running")
        await proc.wait_for_line(r"reconnecting in")
    finally:
        assert await proc.stop() == 0, proc.output
    modules = imported_modules(proc.lines)
    assert {"opsfleet.cli", "opsfleet.daemon.app", "opsfleet.daemon.supervisor.health"} <= modules
    assert forbidden(modules) == []
    assert [m for m in modules if m.split(".")[0] == "cryptography"] == []
