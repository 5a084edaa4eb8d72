"""``pip install 'opsfleet[daemon]'`` into a fresh venv gives a working daemon and no Manager libraries.

The project is built into a wheel, then installed with its ``daemon`` extra by pip's real
resolver (dependencies from the configured indexes and pip's cache) into a new virtualenv.
In that venv ``opsfleet daemon --help`` works, a daemon started against a Manager that is
not there keeps retrying until SIGTERM, the Manager's libraries are not installed, and the
Manager and client commands fail with a message naming their extra.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.packaging.footprint import MANAGER_LIBRARIES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]
NETWORK_TROUBLE = ("NewConnectionError", "Temporary failure in name resolution", "Could not find a version")


def run(*argv: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def daemon_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("daemon-venv")
    wheels, venv = base / "wheels", base / "venv"
    pip = [sys.executable, "-m", "pip"]
    built = run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("opsfleet-*.whl")
    made = run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    installed = run(*pip, "--python", venv / "bin" / "python", "install", "-q", f"{wheel}[daemon]")
    if installed.returncode != 0 and any(t in installed.stderr for t in NETWORK_TROUBLE):
        pytest.skip(f"cannot reach a package index to install the daemon's dependencies:\n{installed.stderr}")
    assert installed.returncode == 0, installed.stderr
    return venv


def test_daemon_extra_installs_no_manager_library(daemon_venv: Path) -> None:
    probe = (
        "import importlib.util, json, sys; "
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"
    )
    found = run(daemon_venv / "bin" / "python", "-c", probe, "grpc", "yaml", *MANAGER_LIBRARIES)
    assert found.returncode == 0, found.stderr
    present = json.loads(found.stdout)
    assert present["grpc"] and present["yaml"]
    assert [m for m in MANAGER_LIBRARIES if present[m]] == []


def test_daemon_runs_and_keeps_retrying(daemon_venv: Path, tmp_path: Path) -> None:
    opsfleet = daemon_venv / "bin" / "opsfleet"
    shown = run(opsfleet, "daemon", "--help", timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "Run the Daemon on this node" in shown.stdout

    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        argv = [opsfleet, "daemon", "--manager", "127.0.0.1:1", "--listen", "127.0.0.1:0"]
        daemon = subprocess.Popen(
            [*argv, "--work-dir", str(tmp_path / "w")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
    try:
        deadline = time.monotonic() + 30
        while log_path.read_text().count("reconnecting in") < 2:
            assert daemon.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
    assert code == 0, log_path.read_text()
    assert "daemon running as node" in log_path.read_text()


def test_manager_and_client_commands_name_their_extra(daemon_venv: Path, tmp_path: Path) -> None:
    opsfleet = daemon_venv / "bin" / "opsfleet"
    manager = run(opsfleet, "manager", "--insecure", "--data-dir", tmp_path, timeout=60)
    assert manager.returncode == 1, manager.stderr
    assert "pip install 'opsfleet[manager]'" in manager.stderr
    nodes = run(opsfleet, "nodes", "list", timeout=60)
    assert nodes.returncode == 1, nodes.stderr
    assert "pip install 'opsfleet[cli]'" in nodes.stderr
