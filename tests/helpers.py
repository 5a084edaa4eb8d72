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


# Written from PROTOCOL.md section 3, independently of the code under test.
CONTRACT_METRIC_KEYS: dict[str, set[str]] = {
    "cpu": {"usage_percent", "cores", "mhz", "user", "system", "idle", "iowait"},
    "memory": {
        *("total_bytes", "used_bytes", "free_bytes", "available_bytes", "usage_percent", "cached"),
        *("buffers", "swap_total", "swap_used", "swap_free", "swap_percent"),
    },
    "disk": {
        *("total_bytes", "used_bytes", "free_bytes", "usage_percent", "read_bytes", "write_bytes"),
        "partition_count",
    },
    "network": {
        *("rx_bytes", "tx_bytes", "bytes_recv", "bytes_sent", "packets_recv", "packets_sent"),
        *("error_in", "error_out", "drop_in", "drop_out", "interface_count", "interval_seconds"),
    },
}
