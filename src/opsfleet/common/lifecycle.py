"""Owned background tasks and signal handling shared by both processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskOwner:
    """Named background tasks owned by one component.

    A task that crashes is logged and reported through ``on_crash`` (the component then
    shuts down loudly). ``stop()`` cancels what is left and waits for it; it is idempotent.
    """

    def __init__(self, owner: str, on_crash: Callable[[str, BaseException], None] | None = None) -> None:
        self._owner = owner
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_crash = on_crash

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{self._owner}:{name}")
        self._tasks[name] = task
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s crashed", task.get_name(), exc_info=exc)
            if self._on_crash is not None:
                self._on_crash(task.get_name(), exc)

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
