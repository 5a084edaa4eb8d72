"""The commands opsfleet prints and runs work as written: the demo banner names the running
executable, and ``binary_path: opsfleet`` runs this installation without ``$PATH``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsfleet import demo
from opsfleet.daemon.supervisor.spawner import resolve_argv


def test_banner_names_the_running_executable_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / ".venv" / "bin" / "opsfleet"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    assert demo.cli_command() == ".venv/bin/opsfleet"
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert demo.cli_command() == str(script)


def test_banner_falls_back_to_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["-m"])
    assert demo.cli_command().endswith(" -m opsfleet")


def test_self_binary_runs_this_installation() -> None:
    assert resolve_argv(["opsfleet", "sample-agent", "--port", "1"]) == [
        sys.executable,
        "-m",
        "opsfleet",
        "sample-agent",
        "--port",
        "1",
    ]
    assert resolve_argv(["/usr/bin/filebeat", "-c", "x"]) == ["/usr/bin/filebeat", "-c", "x"]


def test_sample_agent_subcommand_has_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opsfleet", "sample-agent", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--port" in done.stdout
