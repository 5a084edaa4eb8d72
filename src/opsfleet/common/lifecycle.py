"""Owned background tasks, the crash policy of a process, and signal handling.

Crash policy: a composition root (ManagerApp, DaemonApp) opens a :func:`crash_scope` around
its start-up. Every :class:`TaskOwner` task spawned inside it (directly or by a task spawned
inside it) reports a crash to the scope's handler unless its owner handles crashes itself
(``on_crash``). The root's :class:`Crashes` then stops the whole process in its normal
shutdown order, and the CLI exits with :data:`EXIT_CRASHED` so a supervisor (systemd
``Restart=on-failure``) starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

CrashHandler = Callable[[str, BaseException], None]

EXIT_CRASHED = 70
"""Exit code of ``opsfleet manager`` / ``opsfleet daemon`` after a background task crashed."""

_crash_handler: contextvars.ContextVar[CrashHandler | None] = contextvars.ContextVar(
    "opsfleet_crash_handler", default=None
)


@contextlib.contextmanager
def crash_scope(handler: CrashHandler) -> Iterator[None]:
    """Tasks spawned inside this block (and by those tasks) report crashes to ``handler``."""
    token = _crash_handler.set(handler)
    try:
        yield
    finally:
        _crash_handler.reset(token)


def current_crash_handler() -> CrashHandler | None:
    """The handler of the innermost :func:`crash_scope` around the caller, if any."""
    return _crash_handler.get()


class Crashes:
    """The crash handler of one process: remembers the first crash and wakes :meth:`wait`."""

    def __init__(self, component: str) -> None:
        self._component = component
        self._event = asyncio.Event()
        self.first: tuple[str, BaseException] | None = None

    def report(self, name: str, exc: BaseException) -> None:
        if self.first is None:
            self.first = (name, exc)
            log.critical(
                "%s: background task %s crashed (%s: %s); stopping with exit code %d",
                self._component,
                name,
                type(exc).__name__,
                exc,
                EXIT_CRASHED,
            )
        self._event.set()

    @property
    def happened(self) -> bool:
        return self.first is not None

    async def wait(self) -> None:
        await self._event.wait()


async def wait_stop_or_crash(stop: asyncio.Event, crashes: Crashes) -> None:
    """Return once ``stop`` is set or a crash was reported."""
    waiters = [
        asyncio.create_task(stop.wait(), name="wait:stop"),
        asyncio.create_task(crashes.wait(), name="wait:crash"),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def stop_step(what: str, step: Awaitable[None]) -> None:
    """One step of a shutdown sequence: a failure is logged and the next steps still run."""
    try:
        await step
    except Exception:
        log.exception("stopping: %s failed", what)


class TaskOwner:
    """Named background tasks owned by one component.

    A task that raises is logged and reported through ``on_crash`` when given, else to the
    handler of the :func:`crash_scope` that was current when the task was spawned (the
    component then shuts down loudly). ``stop()`` cancels what is left and waits for it; it is idempotent.
    """

    def __init__(self, owner: str, on_crash: CrashHandler | None = None) -> None:
        self._owner = owner
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_crash = on_crash

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{self._owner}:{name}")
        self._tasks[name] = task
        task.add_done_callback(functools.partial(self._done, self._on_crash or current_crash_handler()))
        return task

    @staticmethod
    def _done(report: CrashHandler | None, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        log.error("background task %s crashed", task.get_name(), exc_info=exc)
        if report is not None:
            report(task.get_name(), exc)

    async def stop(self, timeout: float = 5.0) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks.clear()


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopping."""
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    return stop.is_set()


def install_signal_handlers(
    stop: asyncio.Event, *, on_reload: Callable[[], None] | None = None, on_force: Callable[[], None]
) -> None:
    """SIGTERM/SIGINT set ``stop``; a second one calls ``on_force``; SIGHUP calls ``on_reload``."""
    loop = asyncio.get_running_loop()

    def _stop(signame: str) -> None:
        if stop.is_set():
            log.warning("second %s: forcing exit", signame)
            on_force()
            return
        log.info("received %s, shutting down", signame)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop, sig.name)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload)


SERVER_GC_GEN0_THRESHOLD = 50_000


def tune_server_gc() -> None:
    """The Manager's collector settings, also given to whatever is measured against it.

    Long-lived objects (config, caches of a large fleet) leave the collector's view, and
    collections run less often: full collections of a big heap were the longest stalls in
    the 20,000-node benchmark, and a default threshold more than doubles a 1-year chart's
    time (docs/performance.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(SERVER_GC_GEN0_THRESHOLD, 20, 20)


def run_server_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (the ``manager`` extra), else on asyncio's loop.

    The Manager's serving loop spends much of each gRPC call in asyncio's own machinery;
    uvloop's loop costs about a tenth less CPU per call (docs/performance.md). The
    Manager, the benchmark's baseline server and the simulator all run on it, so the
    benchmarks compare like with like. The daemon keeps asyncio's loop (one call every few
    seconds; less memory).
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def watch_children_without_threads() -> bool:
    """Have asyncio wait for child processes through pidfds on Linux (Python 3.11).

    Python 3.11's default child watcher starts one thread per running child process, blocked
    in ``waitpid``: a daemon supervising 20 agents holds 20 such threads (each with its stack
    and possibly its own malloc arena). Python 3.12 and later use pidfds by default when the
    kernel has them (Linux 5.3+). Call from the running event loop before the first
    subprocess is started; returns whether the pidfd watcher was installed.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an older kernel or a sandbox refusing the syscall: keep the default
        return False
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    return True
