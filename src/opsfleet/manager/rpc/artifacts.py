"""ArtifactService.FetchArtifact: an enrolled node reads an update package over mTLS.

Served on the Manager's main gRPC port only with the fleet CA (``grpc.tls.mode: auto``):
the caller's node certificate must be ``node_id``'s and current (the identity guard), and a
call without one is UNAUTHENTICATED. Server-streaming, written with ``context.write`` so the
one error translation (:func:`grpc_errors`) applies.
"""

from __future__ import annotations

import contextlib
from typing import Any

import grpc

from opsfleet.common.rpc_errors import grpc_errors
from opsfleet.manager.rpc.identity_guard import IdentityGuard
from opsfleet.manager.rpc.servicers import RpcObserver
from opsfleet.manager.services.artifacts import ArtifactService
from opsfleet.proto import artifacts_pb2, artifacts_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


class ArtifactServicer(artifacts_pb2_grpc.ArtifactServiceServicer):
    SERVICE = "artifacts.ArtifactService"

    def __init__(
        self, service: ArtifactService, guard: IdentityGuard, *, observe_rpc: RpcObserver = None
    ) -> None:
        self._service = service
        self._guard = guard
        self.observe_rpc = observe_rpc

    @grpc_errors
    async def FetchArtifact(self, request: artifacts_pb2.FetchArtifactRequest, context: Ctx) -> None:  # type: ignore[override]
        self._guard.caller_node(context)
        await self._guard.check(context, request.node_id)
        pieces = self._service.fetch(
            component=request.component,
            version=request.version,
            sha256=request.sha256,
            offset=request.offset,
        )
        async with contextlib.aclosing(pieces):  # the file is closed also when the caller goes away
            async for piece in pieces:
                await context.write(
                    artifacts_pb2.ArtifactChunk(data=piece.data, offset=piece.offset, size=piece.size)
                )
