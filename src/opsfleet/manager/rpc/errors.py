"""The servicer edge: translate the error tree into gRPC statuses and record each call.

Servicers using :func:`grpc_errors` carry ``SERVICE`` (the full service name) and an
``observe_rpc(method, code, seconds)`` callable (or None).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from opsfleet.common.errors import OpsfleetError, mapping_for

log = logging.getLogger(__name__)

RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"

R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]


def grpc_errors(handler: Handler[R]) -> Handler[R]:
    """Run a servicer method, aborting with the mapped status when it raises OpsfleetError."""

    name = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        started = time.perf_counter()
        code = "UNKNOWN"
        try:
            result = await handler(self, request, context)
            code = "OK"
            return result
        except OpsfleetError as exc:
            mapping = mapping_for(exc)
            code = mapping.grpc_code.name
            if exc.retry_after is not None:
                context.set_trailing_metadata(((RETRY_PUSHBACK_KEY, str(int(exc.retry_after * 1000))),))
            await context.abort(mapping.grpc_code, exc.message)
            raise  # unreachable: abort raises
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            observe = self.observe_rpc
            if observe is not None:
                observe(f"/{self.SERVICE}/{name}", code, time.perf_counter() - started)

    return wrapper


async def unimplemented(context: grpc.aio.ServicerContext[Any, Any], name: str, side: str) -> Any:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is served by the {side}, not by this process")
