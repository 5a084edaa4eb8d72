"""The bare baseline server in mTLS mode (``saturate --mtls``): it accepts a client
certificate of the fleet CA and refuses a client without one, as the Manager does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from benchmarks.procs import ServerProcess, start_baseline
from opsfleet.common.pki import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    MANAGER_DNS_NAME,
    CertificateAuthority,
    key_to_pem,
    make_csr,
    new_private_key,
)
from opsfleet.proto import manager_pb2, manager_pb2_grpc


@pytest.fixture
def fleet_ca(tmp_path: Path) -> CertificateAuthority:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    ca, created = CertificateAuthority.load_or_create(ca_dir)
    assert created and (ca_dir / CA_CERT_FILE).exists() and (ca_dir / CA_KEY_FILE).exists()
    return ca


@pytest.fixture
def baseline(tmp_path: Path, fleet_ca: CertificateAuthority) -> Iterator[ServerProcess]:
    server = start_baseline(tmp_path, ca_dir=tmp_path / "ca")
    try:
        yield server
    finally:
        server.stop()


def _heartbeat(port: int, creds: grpc.ChannelCredentials) -> manager_pb2.HeartbeatResponse:
    options = [("grpc.ssl_target_name_override", MANAGER_DNS_NAME)]
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel:
        stub = manager_pb2_grpc.ManagerServiceStub(channel)
        reply: manager_pb2.HeartbeatResponse = stub.Heartbeat(
            manager_pb2.HeartbeatRequest(node_id="sim-000001"), timeout=10
        )
        return reply


def test_baseline_accepts_a_node_certificate_of_the_fleet_ca(
    baseline: ServerProcess, fleet_ca: CertificateAuthority
) -> None:
    key = new_private_key()
    issued = fleet_ca.sign_node_csr(make_csr(key, "node"), "sim-000001", dt.timedelta(hours=1))
    creds = grpc.ssl_channel_credentials(
        root_certificates=fleet_ca.cert_pem, private_key=key_to_pem(key), certificate_chain=issued.cert_pem
    )
    assert _heartbeat(baseline.port, creds).success
    assert "mTLS" in baseline.log_path.read_text()


def test_baseline_refuses_a_client_without_certificate(
    baseline: ServerProcess, fleet_ca: CertificateAuthority
) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=fleet_ca.cert_pem)
    with pytest.raises(grpc.RpcError) as caught:
        _heartbeat(baseline.port, creds)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
