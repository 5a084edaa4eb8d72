"""The Manager's main gRPC port under the fleet CA: who may call, as whom."""

from __future__ import annotations

import grpc
import pytest

from opsfleet.common.pki import CertificateAuthority, TLSMaterial, key_to_pem, make_csr, new_private_key
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, enrollment_pb2, manager_pb2, manager_pb2_grpc
from tests.integration.security.support import Fleet


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code()


async def test_plaintext_and_certificate_less_clients_are_refused(fleet: Fleet) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fleet.app.grpc_port}") as plain:
        stub = manager_pb2_grpc.ManagerServiceStub(plain)
        code = await _code(stub.Heartbeat(manager_pb2.HeartbeatRequest(node_id="x"), timeout=3))
        assert code == grpc.StatusCode.UNAVAILABLE

    no_cert = fleet.stubs(None)
    assert await _code(no_cert.heartbeat("x")) == grpc.StatusCode.UNAVAILABLE


async def test_certificate_of_another_ca_is_refused(fleet: Fleet) -> None:
    rogue = CertificateAuthority.create()
    key = new_private_key()
    issued = rogue.sign_node_csr(
        make_csr(key, "evil"), "evil", lifetime=__import__("datetime").timedelta(hours=1)
    )
    material = TLSMaterial(ca_pem=rogue.cert_pem, cert_pem=issued.cert_pem, key_pem=key_to_pem(key))
    stubs = fleet.stubs(material)
    assert await _code(stubs.heartbeat("evil")) == grpc.StatusCode.UNAVAILABLE


async def test_a_node_cannot_act_as_another_node(fleet: Fleet) -> None:
    a = await fleet.enrolled("node-a")
    b = await fleet.enrolled("node-b")
    assert (await b.register("node-b")).success
    assert await _code(a.register("node-b", hostname="spoofed-host")) == grpc.StatusCode.PERMISSION_DENIED
    assert await _code(a.heartbeat("node-b")) == grpc.StatusCode.PERMISSION_DENIED
    assert await _code(a.metrics("node-b")) == grpc.StatusCode.PERMISSION_DENIED
    sync = a.daemon.SyncAgentStates(daemon_pb2.SyncAgentStatesRequest(node_id="node-b"), timeout=5)
    assert await _code(sync) == grpc.StatusCode.PERMISSION_DENIED
    get_config = a.daemon.GetConfig(
        daemon_pb2.ConfigRequest(node_id="node-b", config_type="daemon"), timeout=5
    )
    assert await _code(get_config) == grpc.StatusCode.PERMISSION_DENIED
    report = a.daemon.ReportConfigState(
        daemon_pb2.ConfigStateRequest(node_id="node-b", config_hash="0" * 64, state="failed", error="x"),
        timeout=5,
    )
    assert await _code(report) == grpc.StatusCode.PERMISSION_DENIED
    assert fleet.app.configs.node_view("node-b")["reported"] is None  # the spoofed report was not stored
    renew = a.enrollment.RenewCertificate(
        enrollment_pb2.RenewRequest(node_id="node-b", csr_pem=make_csr(new_private_key(), "node-b")),
        timeout=5,
    )
    assert await _code(renew) == grpc.StatusCode.PERMISSION_DENIED
    node = await fleet.app.store.get_node("node-b")
    assert node is not None and node.hostname == "host-a"  # the spoofed registration changed nothing


async def test_daemon_service_register_takes_the_certificate_node_id(fleet: Fleet) -> None:
    a = await fleet.enrolled("node-c")
    stub = daemon_pb2_grpc.DaemonServiceStub(a.channel)
    response = await stub.Register(daemon_pb2.RegisterRequest(hostname="h", ip="10.0.0.1"), timeout=5)
    assert response.node_id == "node-c"
    heartbeat = await stub.Heartbeat(daemon_pb2.HeartbeatRequest(node_id="node-c"), timeout=5)
    assert heartbeat.success


async def test_enroll_port_serves_no_client_certificate_calls(fleet: Fleet) -> None:
    """RenewCertificate without a client certificate (the enrollment port) is UNAUTHENTICATED."""
    assert fleet.app.tls_material is not None
    creds = grpc.ssl_channel_credentials(root_certificates=fleet.app.tls_material.ca_pem)
    options = [("grpc.ssl_target_name_override", "manager.opsfleet.internal")]
    async with grpc.aio.secure_channel(fleet.enroll_address, creds, options=options) as channel:
        from opsfleet.proto import enrollment_pb2_grpc

        stub = enrollment_pb2_grpc.EnrollmentServiceStub(channel)
        renew = stub.RenewCertificate(enrollment_pb2.RenewRequest(node_id="x", csr_pem=b""), timeout=5)
        assert await _code(renew) == grpc.StatusCode.UNAUTHENTICATED
        enroll = stub.Enroll(
            enrollment_pb2.EnrollRequest(token="oft_bad", csr_pem=b"x", node_id="x"), timeout=5
        )
        assert await _code(enroll) in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)


async def test_clone_detection(fleet: Fleet) -> None:
    await fleet.enroll("twin", await fleet.token())
    material = fleet.material("twin")
    one, two = fleet.stubs(material), fleet.stubs(material)
    await one.register("twin", hostname="vm-1", boot_id="boot-1")
    await two.register("twin", hostname="vm-2", boot_id="boot-2")  # a re-image looks like this: no warning
    r = await fleet.http.get("/api/v1/nodes/twin", headers=await fleet.admin())
    assert r.json()["data"]["clone_warning"] is None
    await one.register("twin", hostname="vm-1", boot_id="boot-1")  # ... but the first one is still there
    r = await fleet.http.get("/api/v1/nodes/twin", headers=await fleet.admin())
    warning = r.json()["data"]["clone_warning"]
    assert warning is not None and "vm-1" in warning["detail"] and "vm-2" in warning["detail"]
    events = await fleet.app.store.list_events("twin")
    assert [e.kind.value for e in events].count("clone-suspected") == 1
