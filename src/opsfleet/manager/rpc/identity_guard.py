"""The one place where a gRPC call's certificate is bound to the node it speaks for.

Under mTLS (``grpc.tls.mode: auto``) every ManagerService call and every manager-side
DaemonService call names a node: the caller's certificate must be that node's
(PERMISSION_DENIED otherwise) and one of its current, unrevoked certificates
(UNAUTHENTICATED otherwise; checked against the in-memory IdentityRegistry). Without the
fleet CA (``off`` or ``files``) the guard lets every call through, as the seed does.
"""

from __future__ import annotations

from typing import Any

import grpc

from opsfleet.common.errors import Unauthenticated
from opsfleet.common.pki import Identity, peer_identity
from opsfleet.manager.services.identities import IdentityRegistry, check_bound

Ctx = grpc.aio.ServicerContext[Any, Any]


class IdentityGuard:
    """``await guard.check(context, node_id)`` at the top of each node-scoped servicer method."""

    def __init__(self, registry: IdentityRegistry | None) -> None:
        self.registry = registry

    @property
    def enforcing(self) -> bool:
        return self.registry is not None

    def caller(self, context: Ctx) -> Identity | None:
        """The caller's certificate identity (None without a client certificate)."""
        return peer_identity(context.auth_context())

    def caller_node(self, context: Ctx) -> str:
        """The node id of the caller's certificate; Unauthenticated when it has none."""
        identity = self.caller(context)
        if identity is None or identity.kind != "node":
            raise Unauthenticated("a node certificate from the fleet CA is required")
        return identity.node_id

    async def check(self, context: Ctx, node_id: str) -> None:
        if self.registry is None:
            return
        identity = self.caller(context)
        check_bound(identity.node_id if identity and identity.kind == "node" else None, node_id)
        assert identity is not None
        await self.registry.check(node_id, str(identity.serial))

    async def saw_registration(self, node_id: str, hostname: str, boot_id: str) -> None:
        """Feed clone detection (only identities from the fleet CA can be cloned)."""
        if self.registry is not None:
            await self.registry.saw_registration(node_id, hostname, boot_id)

    def labels(self, node_id: str, labels: dict[str, str]) -> dict[str, str]:
        """The registration's labels with the enrollment token's labels stamped over them."""
        if self.registry is None:
            return labels
        stamped = self.registry.labels(node_id)
        return {**labels, **stamped} if stamped else labels


OPEN = IdentityGuard(None)
