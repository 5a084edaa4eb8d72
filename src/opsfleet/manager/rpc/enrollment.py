"""EnrollmentService: Enroll on the enrollment port, RenewCertificate on the main mTLS port.

Both answers carry the fleet's update public keys (``update_keys``), which the daemon trusts
for PushUpdate besides its ``update.trusted_keys``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from opsfleet.common.rpc_errors import grpc_errors
from opsfleet.manager.rpc.identity_guard import IdentityGuard
from opsfleet.manager.rpc.servicers import RpcObserver
from opsfleet.manager.services.enrollment import EnrollmentService
from opsfleet.proto import enrollment_pb2, enrollment_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


class EnrollmentServicer(enrollment_pb2_grpc.EnrollmentServiceServicer):
    SERVICE = "enrollment.EnrollmentService"

    def __init__(
        self,
        service: EnrollmentService,
        guard: IdentityGuard,
        *,
        observe_rpc: RpcObserver = None,
        update_keys: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        """``update_keys``: the fleet's update public keys (base64) handed to enrolling nodes."""
        self._service = service
        self._guard = guard
        self._update_keys = update_keys
        self.observe_rpc = observe_rpc

    @grpc_errors
    async def Enroll(
        self, request: enrollment_pb2.EnrollRequest, context: Ctx
    ) -> enrollment_pb2.EnrollResponse:
        result = await self._service.enroll(
            token=request.token,
            csr_pem=request.csr_pem,
            node_id=request.node_id,
            hostname=request.hostname,
            boot_id=request.boot_id,
        )
        return enrollment_pb2.EnrollResponse(
            node_id=result.node_id,
            certificate_pem=result.cert_pem,
            ca_pem=result.ca_pem,
            not_after=result.not_after,
            labels=result.labels,
            update_keys=list(self._update_keys()),
        )

    @grpc_errors
    async def RenewCertificate(
        self, request: enrollment_pb2.RenewRequest, context: Ctx
    ) -> enrollment_pb2.RenewResponse:
        caller = self._guard.caller_node(context)
        identity = self._guard.caller(context)
        assert identity is not None
        result = await self._service.renew(
            caller_node=caller,
            caller_serial=str(identity.serial),
            node_id=request.node_id,
            csr_pem=request.csr_pem,
        )
        return enrollment_pb2.RenewResponse(
            certificate_pem=result.cert_pem,
            ca_pem=result.ca_pem,
            not_after=result.not_after,
            update_keys=list(self._update_keys()),
        )
