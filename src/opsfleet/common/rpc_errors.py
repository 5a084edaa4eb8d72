"""The grpc half of the one error table: servicer edges of both processes, and received codes.

:func:`grpc_errors` wraps every servicer method of the Manager and the Daemon. An
:class:`~opsfleet.common.errors.OpsfleetError` becomes its mapped status (with the retry
delay as ``grpc-retry-pushback-ms`` trailing metadata); any other exception is a bug or an
unwrapped foreign error: it is logged with its traceback here and the caller gets INTERNAL
with a generic message, never a stack, SQL text or UNKNOWN. Servicers may carry ``SERVICE``
(the full service name) and ``observe_rpc(method, code, seconds)`` to record each call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from opsfleet.common.errors import GrpcCode, OpsfleetError, error_for_code, mapping_for, retry_delay

log = logging.getLogger(__name__)

RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
INTERNAL_MESSAGE = "internal error (logged by the server)"

R = TypeVar("R")
Ctx = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Any, Ctx], Awaitable[R]]


def status_code(code: GrpcCode) -> grpc.StatusCode:
    return grpc.StatusCode[code.value]


def grpc_status(error: OpsfleetError) -> grpc.StatusCode:
    """The gRPC status code the table gives ``error``."""
    return status_code(mapping_for(error).grpc_code)


def error_from_status(
    code: grpc.StatusCode, message: str, *, retry_after: float | None = None
) -> OpsfleetError:
    """The domain error for a status code received from a peer (unknown codes: Internal)."""
    return error_for_code(code.name, message, retry_after=retry_after)


def grpc_errors(handler: Handler[R]) -> Handler[R]:
    """Run a servicer method; translate whatever it raises into a status (see the module doc)."""

    name = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Ctx) -> R:
        started = time.perf_counter()
        code = GrpcCode.UNKNOWN.value
        try:
            result = await handler(self, request, context)
            code = GrpcCode.OK.value
            return result
        except OpsfleetError as exc:
            grpc_code = mapping_for(exc).grpc_code
            code = grpc_code.value
            delay = retry_delay(exc)
            if delay is not None:
                context.set_trailing_metadata(((RETRY_PUSHBACK_KEY, str(int(delay * 1000))),))
            await context.abort(status_code(grpc_code), exc.message)
            raise  # unreachable: abort raises
        except asyncio.CancelledError:
            code = GrpcCode.CANCELLED.value
            raise
        except grpc.aio.AbortError:  # the handler aborted on purpose: its status stands
            code = _abort_code(context)
            raise
        except Exception:
            code = GrpcCode.INTERNAL.value
            log.exception("%s failed with an unexpected error", name)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
            raise  # unreachable: abort raises
        finally:
            observe = getattr(self, "observe_rpc", None)
            if observe is not None:
                observe(f"/{getattr(self, 'SERVICE', '')}/{name}", code, time.perf_counter() - started)

    return wrapper


def _abort_code(context: Ctx) -> str:
    """The name of the status a handler aborted with (for the call metrics)."""
    got: object = context.code()
    if isinstance(got, grpc.StatusCode):
        return got.name
    for status in grpc.StatusCode:  # some grpc.aio versions hand back the integer code
        if status.value[0] == got:
            return status.name
    return GrpcCode.UNKNOWN.value


async def unimplemented(context: Ctx, message: str) -> NoReturn:
    """Abort with UNIMPLEMENTED (RPCs of a service that the other process serves)."""
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
    raise AssertionError("unreachable: abort raises")
