"""The Manager's ArtifactService seen from an enrolled daemon: a package read over mTLS.

:class:`ManagerArtifacts` is the real :class:`~opsfleet.daemon.updates.package.PackageSource`;
it calls FetchArtifact on the link's current channel (the one carrying the node certificate),
so a renewed certificate is used at once. Errors arrive as the project's error tree;
UNIMPLEMENTED (a Manager without the service) is NotFound, so the installer falls back to
the download URL.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

import grpc

from opsfleet.common.errors import NotFound, Unavailable
from opsfleet.common.rpc_errors import error_from_status
from opsfleet.daemon.updates.package import Piece
from opsfleet.proto import artifacts_pb2, artifacts_pb2_grpc


class ManagerArtifacts:
    def __init__(self, channel: Callable[[], grpc.aio.Channel | None], node_id: str) -> None:
        """``channel()``: the link's current mTLS channel (None while there is none)."""
        self._channel = channel
        self._node_id = node_id

    async def pieces(
        self, component: str, version: str, sha256: str, offset: int
    ) -> AsyncGenerator[Piece, None]:
        channel = self._channel()
        if channel is None:
            raise Unavailable("no connection to the Manager")
        stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        request = artifacts_pb2.FetchArtifactRequest(
            node_id=self._node_id, component=component, version=version, sha256=sha256, offset=offset
        )
        call = stub.FetchArtifact(request)
        try:
            async for chunk in call:
                yield Piece(bytes(chunk.data), int(chunk.offset), int(chunk.size))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise NotFound("the Manager does not serve FetchArtifact") from exc
            raise error_from_status(exc.code(), exc.details() or exc.code().name) from exc
        finally:
            call.cancel()
