"""``opsfleet daemon enroll``: exchange a token for this node's identity.

1. Fetch the certificate chain the Manager's enrollment port presents and keep only the
   certificate whose SHA-256 equals the pinned CA fingerprint (nothing else in it is trusted).
2. Make a key here (it never leaves the node) and a CSR.
3. Call EnrollmentService.Enroll over TLS trusting only that CA, with the Manager's pinned
   name (``MANAGER_DNS_NAME``) as the target, so no other certificate of the CA passes.
   UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are retried with full-jitter
   backoff for up to ``patience`` seconds, always with the same key and CSR: if a reply
   was lost after the Manager committed the enrollment, the retry gets a certificate for
   the same key again without using up another token use.
4. Store ``tls/node.key`` (0600), ``tls/node.pem`` and ``tls/ca.pem`` in the work dir,
   and the fleet's update keys the Manager hands over in ``tls/update-keys.json``.

Nothing is written before step 4 succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from opsfleet.common import rpc as rpc_opts
from opsfleet.common.backoff import Backoff
from opsfleet.common.config_sources import split_host_port
from opsfleet.common.errors import (
    DeadlineExceeded,
    InvalidArgument,
    OpsfleetError,
    PermissionDenied,
    Unavailable,
    error_for_code,
)
from opsfleet.common.pki import (
    MANAGER_DNS_NAME,
    TLSMaterial,
    fetch_server_chain,
    fingerprint,
    key_to_pem,
    make_csr,
    new_private_key,
    normalize_fingerprint,
    save_node_material,
)
from opsfleet.daemon.identity import HostFacts, read_boot_id
from opsfleet.daemon.updates import fleet_keys
from opsfleet.proto import enrollment_pb2, enrollment_pb2_grpc

log = logging.getLogger(__name__)

ENROLL_TIMEOUT = 15.0
ENROLL_PATIENCE = 120.0  # seconds of retries on transient failures


class FingerprintMismatch(PermissionDenied):
    """The server at the enrollment address does not present the pinned CA."""


@dataclass(frozen=True)
class EnrollResult:
    node_id: str
    not_after: int
    labels: dict[str, str]
    update_keys: tuple[str, ...] = ()


def pinned_ca(address: str, pin: str, *, timeout: float = 10.0) -> bytes:
    """The CA certificate (PEM) in the chain served at ``address`` whose fingerprint is ``pin``."""
    want = normalize_fingerprint(pin)
    host, port = split_host_port(address, key="--manager")
    try:
        chain = fetch_server_chain(host, port, timeout=timeout)
    except OSError as exc:
        raise Unavailable(f"cannot reach the enrollment port {address}: {exc}") from exc
    for pem in chain:
        if fingerprint(pem) == want:
            return pem
    seen = ", ".join(fingerprint(p) for p in chain) or "no certificate"
    raise FingerprintMismatch(
        f"CA fingerprint mismatch: {address} presents {seen}, not the pinned {want}; "
        "nothing was written (check the address and `opsfleet ca fingerprint` on the Manager)"
    )


RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


def _explain(exc: grpc.RpcError) -> OpsfleetError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or str(code)
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"enrollment failed: the Manager is unavailable: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"enrollment failed: the Manager did not answer in time: {details}")
    return error_for_code(code.name, f"enrollment refused: {details}")


def _call_with_retries(
    stub: enrollment_pb2_grpc.EnrollmentServiceStub,
    request: enrollment_pb2.EnrollRequest,
    *,
    timeout: float,
    patience: float,
    backoff: Backoff,
    sleep: Callable[[float], None],
) -> enrollment_pb2.EnrollResponse:
    give_up = time.monotonic() + patience
    while True:
        try:
            response: enrollment_pb2.EnrollResponse = stub.Enroll(request, timeout=timeout)
            return response
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            delay = backoff.next_delay()
            if code not in RETRYABLE or time.monotonic() + delay >= give_up:
                raise _explain(exc) from exc
            log.warning("enrollment attempt failed (%s); retrying in %.1fs with the same key", code, delay)
        sleep(delay)


def enroll(
    *,
    address: str,
    token: str,
    ca_fingerprint: str,
    work_dir: Path,
    node_id: str,
    host: HostFacts | None = None,
    timeout: float = ENROLL_TIMEOUT,
    patience: float = ENROLL_PATIENCE,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> EnrollResult:
    """Enroll this node (blocking); OpsfleetError with a clear message on any failure.

    Each attempt waits ``timeout`` seconds; transient failures are retried (same key) until
    ``patience`` seconds have passed since the first attempt."""
    if not token.strip():
        raise InvalidArgument("--token is empty")
    ca_pem = pinned_ca(address, ca_fingerprint)
    key = new_private_key()
    facts = host or HostFacts()
    request = enrollment_pb2.EnrollRequest(
        token=token.strip(),
        csr_pem=make_csr(key, node_id),
        node_id=node_id,
        hostname=facts.hostname,
        boot_id=read_boot_id(),
    )
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    options = [*rpc_opts.channel_options(), ("grpc.ssl_target_name_override", MANAGER_DNS_NAME)]
    with grpc.secure_channel(address, creds, options=options) as channel:
        stub = enrollment_pb2_grpc.EnrollmentServiceStub(channel)
        response = _call_with_retries(
            stub,
            request,
            timeout=timeout,
            patience=patience,
            backoff=backoff or Backoff(0.5, 10.0),
            sleep=sleep,
        )
    material = TLSMaterial(ca_pem=ca_pem, cert_pem=bytes(response.certificate_pem), key_pem=key_to_pem(key))
    identity = material.identity
    if identity is None or identity.node_id != response.node_id:
        raise InvalidArgument("the Manager returned a certificate without this node's identity")
    update_keys = fleet_keys.check_keys(response.update_keys)
    save_node_material(work_dir, material)
    fleet_keys.save_keys(work_dir, update_keys)
    log.info("enrolled as node %s; identity stored in %s", response.node_id, work_dir / "tls")
    if update_keys:
        log.info("the Manager handed over %d update key(s): trusted for updates", len(update_keys))
    return EnrollResult(response.node_id, int(response.not_after), dict(response.labels), tuple(update_keys))
