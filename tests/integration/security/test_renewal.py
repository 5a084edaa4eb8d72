"""A real DaemonApp with an enrolled identity: mTLS link, renewal across expiry, re-enroll hint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from opsfleet.common.pki import validity
from opsfleet.daemon.app import DaemonApp
from opsfleet.daemon.config import load_daemon_config
from tests.helpers import assert_eventually
from tests.integration.daemon.conftest import FAST_DAEMON
from tests.integration.security.support import Fleet


def daemon_app(fleet: Fleet, node_id: str, **overrides: Any) -> DaemonApp:
    settings = {
        **FAST_DAEMON,
        "manager.address": f"127.0.0.1:{fleet.app.grpc_port}",
        "daemon.work_dir": str(fleet.root / node_id),
        "daemon.id": node_id,
        **overrides,
    }
    return DaemonApp(load_daemon_config(None, {}, settings))


async def test_daemon_renews_and_heartbeats_across_expiry(start_fleet: Any) -> None:
    fleet: Fleet = await start_fleet(enrollment__cert_lifetime=3.0, enrollment__min_cert_lifetime=1.0)
    await fleet.enroll("renewing", await fleet.token())
    first_serial = fleet.material("renewing").identity.serial  # type: ignore[union-attr]
    _, first_expiry = validity(fleet.material("renewing").cert_pem)
    daemon = daemon_app(fleet, "renewing")
    await daemon.start()
    try:
        assert daemon.link is not None and daemon.renewer is not None
        await assert_eventually(lambda: daemon.link is not None and daemon.link.heartbeats_sent >= 1)
        # Past the first certificate's expiry, after at least two renewals.
        await assert_eventually(
            lambda: time.time() > first_expiry + 1.5 and daemon.renewer.renewals >= 2,  # type: ignore[union-attr]
            timeout=15,
        )
        sent = daemon.link.heartbeats_sent
        await assert_eventually(lambda: daemon.link.heartbeats_sent > sent + 1, timeout=5)  # type: ignore[union-attr]
        stored = fleet.material("renewing")
        assert stored.identity is not None and stored.identity.serial != first_serial
        assert daemon.link.last_error == ""
        assert fleet.rpc_codes() == {"OK"}, fleet.app.telemetry._rpc_children.keys()
        node = await fleet.app.store.get_node("renewing")
        assert node is not None and node.status.value == "online"
    finally:
        await daemon.stop()


async def test_expired_identity_must_enroll_again(start_fleet: Any, caplog: pytest.LogCaptureFixture) -> None:
    fleet: Fleet = await start_fleet(enrollment__cert_lifetime=1.0, enrollment__min_cert_lifetime=1.0)
    await fleet.enroll("sleeper", await fleet.token())
    _, expiry = validity(fleet.material("sleeper").cert_pem)
    await assert_eventually(lambda: time.time() > expiry + 0.2, timeout=5)
    daemon = daemon_app(fleet, "sleeper")
    await daemon.start()
    try:
        assert "must enroll again with a new token" in caplog.text
        await assert_eventually(lambda: daemon.link is not None and daemon.link.last_error != "")
        assert daemon.link is not None and daemon.link.registrations == 0
    finally:
        await daemon.stop()


async def test_plaintext_daemon_warns(apps: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manager = await apps.manager()
    daemon = await apps.daemon(f"127.0.0.1:{manager.grpc_port}")
    await assert_eventually(lambda: daemon.link.registrations >= 1)
    assert "speaking PLAINTEXT" in caplog.text


async def test_a_node_certificate_is_never_accepted_as_the_manager(fleet: Fleet) -> None:
    """A rogue server presenting another node's certificate (same CA) gets no call from a daemon."""
    import grpc

    from opsfleet.proto import manager_pb2, manager_pb2_grpc

    await fleet.enroll("impostor", await fleet.token())
    await fleet.enroll("victim", await fleet.token())
    rogue_material = fleet.material("impostor")
    calls: list[str] = []

    class Rogue(manager_pb2_grpc.ManagerServiceServicer):
        async def RegisterNode(self, request: Any, context: Any) -> manager_pb2.RegisterNodeResponse:
            calls.append(request.node_id)
            return manager_pb2.RegisterNodeResponse(success=True)

    server = grpc.aio.server()
    manager_pb2_grpc.add_ManagerServiceServicer_to_server(Rogue(), server)
    creds = grpc.ssl_server_credentials([(rogue_material.key_pem, rogue_material.cert_pem)])
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    daemon = daemon_app(fleet, "victim", **{"manager.address": f"127.0.0.1:{port}"})
    await daemon.start()
    try:
        await assert_eventually(lambda: daemon.link is not None and "UNAVAILABLE" in daemon.link.last_error)
        assert daemon.link is not None and daemon.link.registrations == 0
        assert calls == []
    finally:
        await daemon.stop()
        await server.stop(None)
