"""Enrollment over real TLS sockets: tokens, the CA pin, one identity per node."""

from __future__ import annotations

import asyncio
import stat

import grpc
import pytest

from opsfleet.common.errors import Conflict, PermissionDenied
from opsfleet.common.pki import CertificateAuthority
from opsfleet.daemon.enroll import FingerprintMismatch
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
