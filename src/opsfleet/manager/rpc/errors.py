"""Translate the error tree into gRPC statuses at the servicer edge."""

from __future__ import annotations

import functools
import logging
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

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        try:
            return await handler(self, request, context)
        except OpsfleetError as exc:
            mapping = mapping_for(exc)
            if exc.retry_after is not None:
                context.set_trailing_metadata(((RETRY_PUSHBACK_KEY, str(int(exc.retry_after * 1000))),))
            await context.abort(mapping.grpc_code, exc.message)
            raise  # unreachable: abort raises

    return wrapper


async def unimplemented(context: grpc.aio.ServicerContext[Any, Any], name: str, side: str) -> Any:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is served by the {side}, not by this process")
