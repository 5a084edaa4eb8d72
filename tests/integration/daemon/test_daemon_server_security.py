"""The daemon process serves its DaemonService as its identity allows: mTLS when enrolled.

Regression for an attacker on the network: a plaintext client with no credentials could
stop the agents of an enrolled daemon, read their logs and leave no audit entry.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest

from opsfleet.common.errors import Unavailable
from opsfleet.common.pki import load_node_material, node_dns_name
from opsfleet.daemon.enroll import enroll
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc
from tests.helpers import assert_eventually
from tests.integration.daemon.test_agent_ops import agent

STOP = daemon_pb2.AgentOperationRequest(agent_id="a", operation="stop")


async def _stop(channel: grpc.aio.Channel) -> grpc.StatusCode:
    async with channel:
        try:
            await daemon_pb2_grpc.DaemonServiceStub(channel).OperateAgent(STOP, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def _enroll(manager: Any, work_dir: Path, node_id: str) -> None:
    """Enroll ``node_id`` with the Manager's fleet CA, as ``opsfleet daemon enroll`` does."""
    token = await manager.enrollment.create_token(max_uses=1, expires_in=600, labels={}, created_by="test")
    await asyncio.to_thread(
        enroll,
        address=f"127.0.0.1:{manager.enrollment_port}",
        token=token.secret,
        ca_fingerprint=manager.ca.fingerprint,
        work_dir=work_dir,
        node_id=node_id,
    )


async def test_an_enrolled_daemon_serves_only_the_manager(
    apps: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    work_dir = tmp_path / "daemon"
    manager = await apps.manager(**{"grpc.tls.mode": "auto"})
    await _enroll(manager, work_dir, "node-1")
    daemon = await apps.daemon(
        f"127.0.0.1:{manager.grpc_port}", work_dir=work_dir, agents=[agent("a")], daemon__id="node-1"
    )
    await assert_eventually(lambda: daemon.supervisor.agent("a").status == "running", timeout=15)
    address = f"127.0.0.1:{daemon.grpc_port}"

    assert await _stop(grpc.aio.insecure_channel(address)) == grpc.StatusCode.UNAVAILABLE
    await _enroll(manager, tmp_path / "other", "node-2")
    node_cert = load_node_material(tmp_path / "other")
    assert node_cert is not None
    as_node = grpc.ssl_channel_credentials(node_cert.ca_pem, node_cert.key_pem, node_cert.cert_pem)
    options = [("grpc.ssl_target_name_override", node_dns_name("node-1"))]
    denied = await _stop(grpc.aio.secure_channel(address, as_node, options=options))
    assert denied == grpc.StatusCode.PERMISSION_DENIED
    assert daemon.supervisor.agent("a").status == "running"

    # The Manager, dialing as itself, operates the agent; the daemon's audit log names it.
    await assert_eventually(lambda: manager.store.get_node("node-1"), timeout=10)
    manager.daemon_clients.use_identity(None)
    with pytest.raises(Unavailable, match="is unreachable"):  # without the identity: plaintext refused
        await manager.agent_ops.operate("node-1", "a", "stop", username="alice")
    manager.daemon_clients.use_identity(manager.tls_material)
    record = await manager.agent_ops.operate("node-1", "a", "stop", username="alice")
    assert record.success and daemon.supervisor.agent("a").status == "stopped"
    audit = [r.getMessage() for r in caplog.records if r.name == "opsfleet.daemon.rpc.audit"]
    served = [line for line in audit if "result=ok" in line]
    assert len(served) == 1 and "operation=OperateAgent/stop agent='a'" in served[0]
    assert "caller=spiffe://opsfleet/manager at ipv4:127.0.0.1:" in served[0]
    assert "mTLS with the enrolled identity" in caplog.text


async def test_a_daemon_without_identity_warns_that_it_serves_plaintext(
    apps: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="opsfleet.daemon.rpc.server")
    daemon = await apps.daemon("127.0.0.1:1")
    warnings = [r for r in caplog.records if r.name == "opsfleet.daemon.rpc.server"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert f"127.0.0.1:{daemon.grpc_port} in PLAINTEXT without authentication" in warnings[0].getMessage()
    assert "anyone who can reach this port can start, stop and restart agents" in warnings[0].getMessage()
