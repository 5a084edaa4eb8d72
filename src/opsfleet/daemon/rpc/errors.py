"""Translate the error tree into gRPC statuses at the daemon's servicer edge."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from opsfleet.common.errors import OpsfleetError, mapping_for

R = TypeVar("R")
Ctx = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Any, Ctx], Awaitable[R]]


def grpc_errors(handler: Handler[R]) -> Handler[R]:
    """Run a servicer method, aborting with the mapped status when it raises OpsfleetError."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Ctx) -> R:
        try:
            return await handler(self, request, context)
        except OpsfleetError as exc:
            await context.abort(mapping_for(exc).grpc_code, exc.message)
            raise  # unreachable: abort raises

    return wrapper


async def unimplemented(context: Ctx, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
    raise AssertionError("unreachable: abort raises")
