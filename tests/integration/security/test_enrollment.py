"""Enrollment over real TLS sockets: tokens, the CA pin, one identity per node, lost replies."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from cryptography import x509

from opsfleet.common.errors import Conflict, PermissionDenied
from opsfleet.common.pki import (
    MANAGER_DNS_NAME,
    CertificateAuthority,
    TLSMaterial,
    key_to_pem,
    make_csr,
    new_private_key,
    public_key_sha256,
)
from opsfleet.daemon.enroll import FingerprintMismatch, enroll
from opsfleet.daemon.identity import HostFacts
from opsfleet.manager.store.base import EnrollOutcome, EnrollRequest
from opsfleet.proto import enrollment_pb2, enrollment_pb2_grpc
from tests.helpers import assert_eventually
from tests.integration.security.support import Fleet


async def test_enroll_then_mtls_session(fleet_db: Fleet) -> None:
    fleet = fleet_db
    token = await fleet.token(labels={"zone": "eu-1"})
    result = await fleet.enroll("node-a", token)
    assert result.node_id == "node-a"
    assert result.labels == {"zone": "eu-1"}
    tls = fleet.root / "node-a" / "tls"
    assert stat.S_IMODE((tls / "node.key").stat().st_mode) == 0o600
    assert (tls / "ca.pem").read_bytes() == fleet.app.tls_material.ca_pem  # type: ignore[union-attr]

    node = fleet.stubs(fleet.material("node-a"))
    assert (await node.register("node-a")).success
    assert (await node.heartbeat("node-a")).success
    assert (await node.metrics("node-a")).accepted == 1
    stored = await fleet.app.store.get_node("node-a")
    assert stored is not None and stored.labels["zone"] == "eu-1"  # stamped by the token
    events = [e.kind.value for e in await fleet.app.store.list_events("node-a")]
    assert "enrolled" in events


async def test_token_use_limits_expiry_and_revocation(fleet: Fleet) -> None:
    token = await fleet.token(max_uses=2)
    await fleet.enroll("n1", token)
    await fleet.enroll("n2", token)
    with pytest.raises(PermissionDenied, match="used up"):
        await fleet.enroll("n3", token)
    assert not (fleet.root / "n3" / "tls").exists()

    with pytest.raises(PermissionDenied, match="not valid"):
        await fleet.enroll("n3", "oft_not-a-real-token")

    assert fleet.app.enrollment is not None
    revoked = await fleet.enroll_token_then_revoke()
    with pytest.raises(PermissionDenied, match="revoked"):
        await fleet.enroll("n4", revoked)

    clock = [0.0]
    short = await fleet.token(expires_in=60)
    real = fleet.app.enrollment._clock
    fleet.app.enrollment._clock = lambda: real() + clock[0]
    clock[0] = 61.0
    try:
        with pytest.raises(PermissionDenied, match="expired"):
            await fleet.enroll("n5", short)
    finally:
        fleet.app.enrollment._clock = real


async def test_concurrent_enrollments_never_exceed_max_uses(fleet_db: Fleet) -> None:
    fleet = fleet_db
    token = await fleet.token(max_uses=3)
    results = await asyncio.gather(*(fleet.enroll(f"c{i}", token) for i in range(8)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, PermissionDenied)]
    assert len(ok) == 3 and len(refused) == 5, results
    tokens = await fleet.app.enrollment.list_tokens()  # type: ignore[union-attr]
    assert tokens[0].uses == 3


async def test_fingerprint_mismatch_writes_nothing(fleet: Fleet) -> None:
    other = CertificateAuthority.create()
    token = await fleet.token()
    with pytest.raises(FingerprintMismatch, match="fingerprint mismatch"):
        await fleet.enroll("pinned", token, fingerprint=other.fingerprint)
    assert not (fleet.root / "pinned").exists()
    # The token was not spent: the right pin still works.
    assert (await fleet.enroll("pinned", token)).node_id == "pinned"


async def test_active_identity_is_not_enrolled_twice_but_deleted_node_may_re_enroll(fleet: Fleet) -> None:
    node = await fleet.enrolled("dup")
    await node.register("dup")
    with pytest.raises(Conflict, match="already has an active identity"):
        await fleet.enroll("dup", await fleet.token())

    r = await fleet.http.delete("/api/v1/admin/nodes/dup", headers=await fleet.admin())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["certificates_revoked"] == 1
    # Refused at once, on the connection that was already open.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node.heartbeat("dup")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "enroll again" in (err.value.details() or "")

    again = await fleet.enrolled("dup")
    assert (await again.register("dup")).success
    await assert_eventually(lambda: fleet.app.store.get_node("dup"))


class GatedStore:
    """The Manager's enrollment store whose first batch waits for ``gate``: the Enroll call
    that carries it outlives its client's deadline, and commits once the gate opens."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.gate = asyncio.Event()
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def enroll_many(self, requests: Sequence[EnrollRequest], now: float) -> list[EnrollOutcome]:
        self.batches += 1
        if self.batches == 1:
            await self.gate.wait()
        result: list[EnrollOutcome] = await self._inner.enroll_many(requests, now)
        return result


async def test_enroll_reply_lost_after_commit_the_same_request_gets_a_certificate(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = fleet.app.enrollment
    assert service is not None and fleet.app.tls_material is not None
    gated = GatedStore(service._store)
    monkeypatch.setattr(service, "_store", gated)
    token = await fleet.token(max_uses=1)
    key = new_private_key()
    request = enrollment_pb2.EnrollRequest(token=token, csr_pem=make_csr(key, "lost"), node_id="lost")
    creds = grpc.ssl_channel_credentials(root_certificates=fleet.app.tls_material.ca_pem)
    options = [("grpc.ssl_target_name_override", MANAGER_DNS_NAME)]
    async with grpc.aio.secure_channel(fleet.enroll_address, creds, options=options) as channel:
        stub = enrollment_pb2_grpc.EnrollmentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Enroll(request, timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        gated.gate.set()  # the first enrollment commits after its reply was lost
        await assert_eventually(lambda: fleet.app.enrollment_store.active_identities(time.time(), "lost"))

        again = await stub.Enroll(request, timeout=10)
    cert = x509.load_pem_x509_certificate(again.certificate_pem)
    assert public_key_sha256(cert.public_key()) == public_key_sha256(key.public_key())
    tokens = await service.list_tokens()
    assert tokens[0].uses == 1  # the retry counted no use (max_uses=1)
    material = TLSMaterial(
        ca_pem=bytes(again.ca_pem), cert_pem=bytes(again.certificate_pem), key_pem=key_to_pem(key)
    )
    assert (await fleet.stubs(material).register("lost")).success


async def test_daemon_enroll_retries_a_deadline_with_the_same_key(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = fleet.app.enrollment
    assert service is not None
    gated = GatedStore(service._store)
    monkeypatch.setattr(service, "_store", gated)
    loop = asyncio.get_running_loop()
    delays: list[float] = []

    def backoff_sleep(delay: float) -> None:  # runs in the enrolling thread between attempts
        delays.append(delay)
        loop.call_soon_threadsafe(gated.gate.set)

    token = await fleet.token(max_uses=1)
    result = await asyncio.to_thread(
        enroll,
        address=fleet.enroll_address,
        token=token,
        ca_fingerprint=fleet.fingerprint,
        work_dir=fleet.root / "retrier",
        node_id="retrier",
        host=HostFacts(hostname="host-retrier"),
        timeout=1.0,
        sleep=backoff_sleep,
    )
    assert result.node_id == "retrier" and len(delays) == 1
    identities = await fleet.app.enrollment_store.active_identities(time.time(), "retrier")
    material = fleet.material("retrier")
    assert material.identity is not None
    assert {i.serial for i in identities} >= {str(material.identity.serial)}
    assert len(identities) == 2 and len({i.key_sha256 for i in identities}) == 1  # one key for both
    assert (await service.list_tokens())[0].uses == 1
    assert (await fleet.stubs(material).register("retrier")).success
