"""A command whose extra is not installed fails with a message naming the extra.

The missing libraries are hidden from a fresh interpreter (``sys.modules[name] = None`` makes
importing them raise ModuleNotFoundError, as on a node installed without the extra).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from opsfleet.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_without(hidden: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, hidden, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={"HOME": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_client_commands_name_the_cli_extra(tmp_path: Path) -> None:
    done = run_without("rich", "nodes", "list", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "`opsfleet nodes` needs the optional dependencies of opsfleet[cli]" in done.stderr
    assert "pip install 'opsfleet[cli]'" in done.stderr
    assert "'rich'" in done.stderr


def test_manager_names_the_manager_extra(tmp_path: Path) -> None:
    hidden = "sqlalchemy,fastapi,uvicorn,alembic"
    done = run_without(hidden, "manager", "--insecure", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "pip install 'opsfleet[manager]'" in done.stderr


def test_help_lists_commands_that_are_not_installed(tmp_path: Path) -> None:
    done = run_without("rich", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nodes" in done.stdout
    assert "not installed: pip install 'opsfleet[cli]'" in done.stdout
    assert "run the node Daemon" in done.stdout
