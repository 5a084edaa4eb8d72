"""Who may call the DaemonService, and how a caller is named in the audit log.

The TLS handshake already refused clients without a certificate from the trusted CA (and
expired or self-signed ones). :class:`ManagerOnly` then checks, in every call, that the
certificate carries the Manager identity (``spiffe://opsfleet/manager``): a node's own
certificate from the same CA is refused with PERMISSION_DENIED.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from opsfleet.common.certs import MANAGER_URI, peer_identity
from opsfleet.common.rpc_errors import Ctx

log = logging.getLogger(__name__)

NO_CERTIFICATE = "a client certificate with the Manager identity (" + MANAGER_URI + ") is required"


def caller_of(context: Ctx) -> str:
    """The caller for logs: its certificate identity and address, or only its address."""
    identity = peer_identity(context.auth_context())
    address = context.peer() or "unknown peer"
    return f"{identity.uri} at {address}" if identity is not None else address


def refusal(context: Ctx) -> tuple[grpc.StatusCode, str] | None:
    """Why this call may not be served (status and message), or None for the Manager."""
    auth = context.auth_context()
    identity = peer_identity(auth)
    if identity is None:
        if auth.get("x509_pem_cert"):
            return grpc.StatusCode.UNAUTHENTICATED, (
                f"the client certificate carries no opsfleet identity; {NO_CERTIFICATE}"
            )
        return grpc.StatusCode.UNAUTHENTICATED, NO_CERTIFICATE
    if identity.kind != "manager":
        return grpc.StatusCode.PERMISSION_DENIED, (
            f"certificate identity {identity.uri} may not call the DaemonService: only {MANAGER_URI} may"
        )
    return None


Behavior = Callable[[Any, Ctx], Awaitable[Any]]


def _guard(method: str, behavior: Behavior) -> Behavior:
    async def guarded(request: Any, context: Ctx) -> Any:
        refused = refusal(context)
        if refused is not None:
            code, message = refused
            log.warning("refused %s from %s: %s", method, caller_of(context), message)
            await context.abort(code, message)
        return await behavior(request, context)

    return guarded


if TYPE_CHECKING:
    Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the runtime class is not generic
    Interceptor = grpc.aio.ServerInterceptor


class ManagerOnly(Interceptor):
    """Serve a call only to a peer whose verified certificate has the Manager identity.

    Every method of the server is guarded, including the ones that answer UNIMPLEMENTED.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # unknown methods answer UNIMPLEMENTED; the service has only unary calls
        behavior: Behavior = handler.unary_unary  # type: ignore[assignment]  # async under grpc.aio
        return grpc.unary_unary_rpc_method_handler(
            _guard(handler_call_details.method.rsplit("/", 1)[-1], behavior),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
