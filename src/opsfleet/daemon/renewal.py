"""Certificate renewal of an enrolled daemon.

At two thirds of its certificate's lifetime the daemon makes a new key, sends a CSR with
EnrollmentService.RenewCertificate over its current mTLS channel, stores the new identity
(each file replaced atomically, with the fleet's update keys the answer carries) and switches
the link to it; the old certificate stays valid
until it expires, so nothing in flight fails. A failed renewal is retried every
``retry_interval`` (or sooner near expiry). A certificate that expired while the daemon was
offline cannot be renewed: the node must enroll again with a new token.

Lifecycle: ``start()`` spawns the owned loop; ``stop()`` ends it and is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from opsfleet.common.certs import TLSMaterial, renewal_due, save_node_material, validity
from opsfleet.common.errors import InvalidArgument
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.daemon.link import ManagerLink
from opsfleet.daemon.updates import fleet_keys
from opsfleet.proto import enrollment_pb2, enrollment_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_RETRY = 30.0

REENROLL_HINT = (
    "the node certificate expired at %s: this daemon must enroll again with a new token "
    "(opsfleet daemon enroll --manager HOST:9092 --token TOKEN --ca-fingerprint sha256:...)"
)


def expired_message(material: TLSMaterial, now: float | None = None) -> str | None:
    """The re-enroll hint when the certificate has expired, else None."""
    _, not_after = validity(material.cert_pem)
    if not_after > (now if now is not None else time.time()):
        return None
    return REENROLL_HINT % time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(not_after))


class CertificateRenewer:
    def __init__(
        self,
        *,
        node_id: str,
        work_dir: Path,
        material: TLSMaterial,
        link: ManagerLink,
        timeout: float = 10.0,
        retry_interval: float = DEFAULT_RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._node_id = node_id
        self._work_dir = work_dir
        self.material = material
        self._link = link
        self._timeout = timeout
        self._retry = retry_interval
        self._clock = clock
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("renewal")
        self.renewals = 0
        self.listeners: list[Callable[[TLSMaterial], None]] = []

    async def start(self) -> None:
        self._tasks.spawn("renew-loop", self._loop())

    async def stop(self) -> None:
        self._stop.set()
        await self._tasks.stop(timeout=2.0)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            due = renewal_due(self.material.cert_pem)
            if await sleep_or_stop(self._stop, due - self._clock()):
                return
            try:
                await self.renew_once()
            except (grpc.aio.AioRpcError, InvalidArgument, ValueError, OSError) as exc:
                message = expired_message(self.material, self._clock())
                if message is not None:
                    log.error(message)
                    return
                _, not_after = validity(self.material.cert_pem)
                delay = min(self._retry, max(0.5, (not_after - self._clock()) / 4))
                log.warning("certificate renewal failed (%s); retrying in %.1fs", _describe(exc), delay)
                if await sleep_or_stop(self._stop, delay):
                    return

    async def renew_once(self) -> TLSMaterial:
        """Renew now; the new material (stored, and in use by the link)."""
        # Making a key and a CSR is the one job of a running daemon that needs ``cryptography``
        # (about 12 MiB resident): it is imported here, at the first renewal, not at startup.
        from opsfleet.common.pki import key_to_pem, make_csr, new_private_key

        key = new_private_key()
        stub = enrollment_pb2_grpc.EnrollmentServiceStub(self._link.channel)
        response = await stub.RenewCertificate(
            enrollment_pb2.RenewRequest(node_id=self._node_id, csr_pem=make_csr(key, self._node_id)),
            timeout=self._timeout,
        )
        material = TLSMaterial(
            ca_pem=bytes(response.ca_pem) or self.material.ca_pem,
            cert_pem=bytes(response.certificate_pem),
            key_pem=key_to_pem(key),
        )
        identity = material.identity
        if identity is None or identity.node_id != self._node_id:
            raise ValueError("the renewed certificate does not carry this node's identity")
        update_keys = fleet_keys.check_keys(response.update_keys)
        await asyncio.to_thread(save_node_material, self._work_dir, material)
        await asyncio.to_thread(fleet_keys.save_keys, self._work_dir, update_keys)
        self.material = material
        self._link.use_material(material)
        for listener in self.listeners:
            listener(material)
        self.renewals += 1
        log.info(
            "certificate renewed (serial %x, valid until %s)",
            identity.serial,
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(identity.not_after)),
        )
        return material


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name} {exc.details() or ''}".strip()
    return str(exc)
