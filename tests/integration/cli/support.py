"""Support for CLI tests: run ``python -m opsfleet`` as a subprocess, or ``main(argv)`` in a thread.

The Manager runs in the test's event loop, so the CLI (synchronous) must never run on it:
subprocesses are awaited with asyncio, in-process calls go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsfleet.cli import main
from tests.integration.web.support import ADMIN_PASSWORD, Web


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self
        return json.loads(self.stdout)


@dataclass
class Cli:
    """The CLI pointed at one Manager, with its profile file in a temporary directory."""

    server: str
    profile: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLEET_")}
        env.pop("COLUMNS", None)
        env |= {"OPSFLEET_CLI_CONFIG": str(self.profile), "HOME": str(self.home), "XDG_CONFIG_HOME": ""}
        env |= self.extra_env | overrides
        return env

    async def run(self, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
        """``python -m opsfleet ARGS`` as a real subprocess."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opsfleet",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(**(env or {})),
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def login(self, username: str = "admin", password: str = ADMIN_PASSWORD, *extra: str) -> Result:
        result = await self.run(
            "login",
            "--server",
            self.server,
            "-u",
            username,
            "--password-stdin",
            *extra,
            stdin=password + "\n",
        )
        assert result.code == 0, result
        return result


class InProcess:
    """``opsfleet.cli.main(argv)`` in a worker thread, with stdout/stderr captured by capsys."""

    def __init__(self, cli: Cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.cli = cli
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        for key in list(os.environ):
            if key.startswith("OPSFLEET_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("OPSFLEET_CLI_CONFIG", str(cli.profile))
        monkeypatch.setenv("COLUMNS", "200")

    async def __call__(self, *args: str, stdin: str = "") -> Result:
        import io

        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        code = await asyncio.to_thread(_main, list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    async def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> Result:
        result = await self(
            "login", "--server", self.cli.server, "-u", username, "--password-stdin", stdin=password
        )
        assert result.code == 0, result
        return result


def _main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: --help, usage errors
        return exc.code if isinstance(exc.code, int) else 1


async def start_manager(app_config: Any) -> Web:
    import grpc

    from opsfleet.manager.app import ManagerApp

    app = ManagerApp(app_config)
    await app.start()
    return Web(app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}"))
