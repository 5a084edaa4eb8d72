"""Shared test helpers: polling instead of sleeping, free ports, certificates."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import httpx

from opsfleet.proto import manager_pb2_grpc

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers that need one up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def http_service(
    argv: Sequence[str], url: str, *, name: str, ready_timeout: float
) -> AsyncIterator[str]:
    """Run a server process (a Prometheus-style binary with a ``/-/ready`` endpoint at ``url``)
    until the block ends; yields ``url`` once it answers ready."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient() as client:

            async def ready() -> bool:
                assert proc.returncode is None, f"{name} exited with {proc.returncode}"
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(f"{url}/-/ready")).status_code == 200
                return False

            await assert_eventually(ready, timeout=ready_timeout)
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def scripted_manager(servicer: manager_pb2_grpc.ManagerServiceServicer) -> AsyncIterator[int]:
    """A real plaintext gRPC server on 127.0.0.1:0 serving ``servicer`` as the ManagerService
    (a scripted manager for fault tests); yields its port and stops it on exit."""
    server = grpc.aio.server()
    manager_pb2_grpc.add_ManagerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)
