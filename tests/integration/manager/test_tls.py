"""TLS and mutual TLS on the Manager's gRPC port (certificates made by trustme)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.proto import manager_pb2, manager_pb2_grpc


def creds(files: dict[str, str], *, client_cert: bool) -> grpc.ChannelCredentials:
    ca = Path(files["ca"]).read_bytes()
    if not client_cert:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=Path(files["client_key"]).read_bytes(),
        certificate_chain=Path(files["client_cert"]).read_bytes(),
    )


REQ = manager_pb2.RegisterNodeRequest(node_id="tls-node", hostname="h", ip="127.0.0.1")


async def _register(port: int, credentials: grpc.ChannelCredentials) -> manager_pb2.RegisterNodeResponse:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = manager_pb2_grpc.ManagerServiceStub(channel)
        return await stub.RegisterNode(REQ, timeout=5)


async def test_tls(tmp_path: Path, start_manager: Callable[..., Any], tls_files: dict[str, str]) -> None:
    r = await start_manager(
        f"sqlite:///{tmp_path / 'tls.db'}",
        **{
            "grpc.tls.enabled": True,
            "grpc.tls.cert_file": tls_files["server_cert"],
            "grpc.tls.key_file": tls_files["server_key"],
        },
    )
    assert (await _register(r.app.grpc_port, creds(tls_files, client_cert=False))).success
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{r.app.grpc_port}") as channel:
            await manager_pb2_grpc.ManagerServiceStub(channel).RegisterNode(REQ, timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_client_without_certificate(
    tmp_path: Path, start_manager: Callable[..., Any], tls_files: dict[str, str]
) -> None:
    r = await start_manager(
        f"sqlite:///{tmp_path / 'mtls.db'}",
        **{
            "grpc.tls.enabled": True,
            "grpc.tls.cert_file": tls_files["server_cert"],
            "grpc.tls.key_file": tls_files["server_key"],
            "grpc.tls.ca_file": tls_files["ca"],
        },
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _register(r.app.grpc_port, creds(tls_files, client_cert=False))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await r.app.store.list_nodes() == []
    assert (await _register(r.app.grpc_port, creds(tls_files, client_cert=True))).success
    assert [n.node_id for n in await r.app.store.list_nodes()] == ["tls-node"]
