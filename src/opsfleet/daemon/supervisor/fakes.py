"""In-memory stand-ins for the supervisor's I/O seams (spawner, clock), for tests.

:class:`FakeSpawner` hands out :class:`FakeChild` processes that exit when the test says so
or when signalled, and whose output the test writes. Their pids never exist on the host.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping, Sequence

FAKE_PID_BASE = 10_000_000  # above Linux's pid_max: never a real process


class FakeStream:
    def __init__(self) -> None:
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._eof = False

    def feed(self, data: bytes) -> None:
        if data:
            self._chunks.put_nowait(data)

    def close(self) -> None:
        self._chunks.put_nowait(b"")

    async def read(self, n: int = -1) -> bytes:
        if self._eof:
            return b""
        data = await self._chunks.get()
        if not data:
            self._eof = True
        return data


class FakeChild:
    def __init__(
        self, pid: int, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, *, ignore_term: bool
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.ignore_term = ignore_term
        self.signals: list[int] = []
        self._pid = pid
        self._out = FakeStream()
        self._err = FakeStream()
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def stdout(self) -> FakeStream:
        return self._out

    @property
    def stderr(self) -> FakeStream:
        return self._err

    @property
    def exited(self) -> bool:
        return self._exit.done()

    def exit(self, returncode: int) -> None:
        """End the process with ``returncode`` (negative: killed by that signal); idempotent."""
        if not self._exit.done():
            self._out.close()
            self._err.close()
            self._exit.set_result(returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def signal_group(self, sig: int) -> None:
        if self._exit.done():
            return
        self.signals.append(sig)
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and not self.ignore_term):
            self.exit(-sig)


class FakeSpawner:
    """Records every spawn; ``fail_with`` makes the next spawns raise; ``ignore_term`` children."""

    def __init__(self) -> None:
        self.children: list[FakeChild] = []
        self.fail_with: OSError | None = None
        self.ignore_term = False

    async def spawn(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None) -> FakeChild:
        if self.fail_with is not None:
            raise self.fail_with
        child = FakeChild(FAKE_PID_BASE + len(self.children), argv, env, cwd, ignore_term=self.ignore_term)
        self.children.append(child)
        return child

    @property
    def last(self) -> FakeChild:
        return self.children[-1]


class FakeClock:
    """Time that moves only when the test says so: ``advance()`` moves wall and monotonic time
    together and wakes every :meth:`wait` whose timeout has passed."""

    def __init__(self, now: float = 1_700_000_000.0, mono: float = 1_000.0) -> None:
        self.now = now
        self.mono = mono
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        if timeout <= 0:
            return False
        due: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.mono + timeout, due)
        self._sleepers.append(entry)
        waiter: asyncio.Future[None] = asyncio.ensure_future(self._until(event))
        try:
            await asyncio.wait([due, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if entry in self._sleepers:
                self._sleepers.remove(entry)
        return event.is_set()

    @staticmethod
    async def _until(event: asyncio.Event) -> None:
        await event.wait()

    @property
    def next_deadline(self) -> float | None:
        """The monotonic time the earliest pending :meth:`wait` times out (None: nobody waits)."""
        pending = [deadline for deadline, due in self._sleepers if not due.done()]
        return min(pending, default=None)

    def advance(self, seconds: float) -> None:
        """Move time forward at once; waits that timed out wake on the next loop iterations."""
        self.now += seconds
        self.mono += seconds
        for deadline, due in list(self._sleepers):
            if deadline <= self.mono and not due.done():
                due.set_result(None)

    async def skip(self, seconds: float) -> None:
        """Let ``seconds`` pass deadline by deadline, letting the woken tasks run at each one.

        Each timer then fires at its own time and sees the clock it expects, as if the time
        had really passed (timers armed meanwhile fire too when they fall in the span).
        """
        target = self.mono + seconds
        while True:
            await _settle()
            deadline = self.next_deadline
            if deadline is None or deadline > target:
                break
            self.advance(max(0.0, deadline - self.mono))
        self.advance(max(0.0, target - self.mono))
        await _settle()


async def _settle(rounds: int = 20) -> None:
    """Give the event loop enough turns to run what was just woken (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
