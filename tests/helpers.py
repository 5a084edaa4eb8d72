"""Shared test helpers: polling instead of sleeping, free ports, certificates."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def assert_eventually(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05, message: str = ""
) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value without raising."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last: Any = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            last = result
            if result:
                return result
        except AssertionError as exc:
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f"{message} (last value {last!r})" if message else f"last value {last!r}"
            if last_exc is not None:
                raise AssertionError(f"condition not met within {timeout}s: {detail}") from last_exc
            raise AssertionError(f"condition not met within {timeout}s: {detail}")
        await asyncio.sleep(interval)


async def wait_for(awaitable: Awaitable[T], timeout: float = 10.0) -> T:
    return await asyncio.wait_for(awaitable, timeout)
