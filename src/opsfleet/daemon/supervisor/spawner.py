"""Starting agent processes: the Spawner seam and its asyncio subprocess implementation.

Each agent runs in a new session (so its own process group): stopping signals the whole
group, which also reaches the helpers an agent forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

PIPE_READ_LIMIT = 1024 * 1024
SELF_BINARY = "opsfleet"
"""``binary_path: opsfleet`` runs this installation's opsfleet (the daemon's own interpreter),
whether or not an ``opsfleet`` is on ``$PATH``: ``opsfleet sample-agent`` works as shipped."""


def resolve_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` as executed: :data:`SELF_BINARY` becomes ``<python> -m opsfleet``."""
    if argv and argv[0] == SELF_BINARY:
        return [sys.executable, "-m", "opsfleet", *argv[1:]]
    return list(argv)


class ByteStream(Protocol):
    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes; ``b""`` at end of stream."""
        ...


class ChildProcess(Protocol):
    """A started agent process. ``stdout``/``stderr`` are read by the supervisor only."""

    @property
    def pid(self) -> int: ...

    @property
    def stdout(self) -> ByteStream: ...

    @property
    def stderr(self) -> ByteStream: ...

    async def wait(self) -> int:
        """The exit status once the process has exited (negative: killed by that signal)."""
        ...

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process group; a group that is gone already is not an error."""
        ...


class Spawner(Protocol):
    async def spawn(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None) -> ChildProcess:
        """Start ``argv``; OSError when it cannot be executed."""
        ...


class SubprocessChild:
    """:class:`ChildProcess` over an ``asyncio.subprocess.Process``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        if process.stdout is None or process.stderr is None:
            raise ValueError("the process must have piped stdout and stderr")
        self._process = process
        self._stdout: asyncio.StreamReader = process.stdout
        self._stderr: asyncio.StreamReader = process.stderr

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def stdout(self) -> ByteStream:
        return self._stdout

    @property
    def stderr(self) -> ByteStream:
        return self._stderr

    async def wait(self) -> int:
        return await self._process.wait()

    def signal_group(self, sig: int) -> None:
        # The child called setsid(), so its pid is its process group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)


class SubprocessSpawner:
    """The real :class:`Spawner`: stdin from /dev/null, stdout/stderr piped to the daemon."""

    async def spawn(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None) -> ChildProcess:
        process = await asyncio.create_subprocess_exec(
            *resolve_argv(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=cwd or None,
            start_new_session=True,
            limit=PIPE_READ_LIMIT,
        )
        return SubprocessChild(process)
