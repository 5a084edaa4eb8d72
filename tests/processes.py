"""Run opsfleet commands as real subprocesses and read what they log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

LISTEN_RE = re.compile(r"gRPC listening on (\S+):(\d+)")


class Proc:
    """An ``opsfleet`` subprocess whose stderr is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Proc:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLEET_")}
        full_env.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opsfleet",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
        )
        return cls(proc)

    @classmethod
    async def shell(cls, command: str, *, env: dict[str, str], cwd: Path, stdin: bytes | None = None) -> Proc:
        """``command`` run by ``sh -c`` as an operator would type it (its own session)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLEET_")}
        full_env.update(env)
        proc = await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            f"exec {command}",  # signals reach the command, not just the shell
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
        )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        regex = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for line in self.lines:
                match = regex.search(line)
                if match:
                    return match
            if self.proc.returncode is not None and self._reader.done():
                raise AssertionError(
                    f"process exited ({self.proc.returncode}) before {pattern!r}:\n{self.output}"
                )
            if loop.time() > deadline:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{self.output}")
            await asyncio.sleep(0.05)

    async def grpc_port(self) -> int:
        match = await self.wait_for_line(LISTEN_RE.pattern)
        return int(match.group(2))

    async def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit on its own; its exit code."""
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return code

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        await self._reader
        return code
