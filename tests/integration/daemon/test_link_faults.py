"""Daemon link edge cases: manager pushback, a full spool, TLS and mTLS to the manager."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc

from opsfleet.proto import manager_pb2, manager_pb2_grpc
from tests.helpers import assert_eventually, scripted_manager


class SheddingManager(manager_pb2_grpc.ManagerServiceServicer):
    """Answers RESOURCE_EXHAUSTED with a 1.5 s retry pushback to the first two registrations."""

    def __init__(self) -> None:
        self.register_times: list[float] = []

    async def RegisterNode(self, request: Any, context: Any) -> manager_pb2.RegisterNodeResponse:
        self.register_times.append(time.monotonic())
        if len(self.register_times) <= 2:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", "1500"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "shedding load")
        return manager_pb2.RegisterNodeResponse(success=True, message="ok")

    async def Heartbeat(self, request: Any, context: Any) -> manager_pb2.HeartbeatResponse:
        return manager_pb2.HeartbeatResponse(success=True)

    async def ReportMetrics(self, request: Any, context: Any) -> manager_pb2.ReportMetricsResponse:
        return manager_pb2.ReportMetricsResponse(success=True)


async def test_retry_delay_from_manager_is_honoured(apps: Any) -> None:
    servicer = SheddingManager()
    async with scripted_manager(servicer) as port:
        daemon = await apps.daemon(
            f"127.0.0.1:{port}", manager__reconnect_interval=0.05, manager__reconnect_max=0.1
        )
        await assert_eventually(lambda: daemon.link.connected, timeout=10)
        times = servicer.register_times
        assert len(times) == 3
        # Without the pushback the daemon would retry within 0.1 s.
        assert times[1] - times[0] >= 1.4 and times[2] - times[1] >= 1.4


async def test_full_spool_drops_oldest_and_counts(apps: Any, tmp_path: Path) -> None:
    import socket

    from opsfleet.daemon.spool import Spool

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path / "node"
    limit = 64 * 1024
    # An earlier outage left the spool nearly full.
    now = int(time.time())
    with Spool(work / "spool", max_bytes=limit, segment_bytes=limit // 8) as spool:
        prefilled = 0
        while spool.size_bytes() < limit * 0.85:
            spool.append(
                [{"type": "cpu", "timestamp": now - 3000 + prefilled, "values": {"usage_percent": 1.0}}]
            )
            prefilled += 1
        assert spool.pending() == prefilled
        assert spool.dropped == 0 and spool.size_bytes() > limit * 0.8
    daemon = await apps.daemon(f"127.0.0.1:{port}", work_dir=work, spool__max_bytes=limit)
    await assert_eventually(lambda: daemon.outbox.dropped > 0, timeout=30, interval=0.2)
    pending = await daemon.outbox.pending()
    assert pending + daemon.outbox.dropped == prefilled + daemon.outbox.appended
    manager = await apps.manager(port=port)
    await assert_eventually(lambda: _pending_zero(daemon), timeout=20)
    await apps.stop(daemon)
    stored = await manager.store.count_metrics(daemon.node_id)
    assert stored == prefilled + daemon.outbox.appended - daemon.outbox.dropped
    # The oldest went: the first prefilled samples are gone, the newest prefilled one arrived.
    cpu = {s.timestamp for s in await manager.store.query_metrics(daemon.node_id, "cpu", 0, 2**40)}
    assert now - 3000 not in cpu and now - 3000 + prefilled - 1 in cpu


async def _pending_zero(daemon: Any) -> bool:
    return await daemon.outbox.pending() == 0


def _tls(tls_files: dict[str, str], *, mutual: bool) -> dict[str, Any]:
    server = {
        "grpc.tls.enabled": True,
        "grpc.tls.cert_file": tls_files["server_cert"],
        "grpc.tls.key_file": tls_files["server_key"],
    }
    if mutual:
        server["grpc.tls.ca_file"] = tls_files["ca"]
    return server


async def test_daemon_over_tls(apps: Any, tls_files: dict[str, str]) -> None:
    manager = await apps.manager(**_tls(tls_files, mutual=False))
    daemon = await apps.daemon(
        f"localhost:{manager.grpc_port}", manager__tls__enabled=True, manager__tls__ca_file=tls_files["ca"]
    )
    await assert_eventually(lambda: manager.store.count_metrics(daemon.node_id), timeout=10)


async def test_daemon_over_mtls_and_refused_without_client_cert(
    apps: Any, tls_files: dict[str, str], tmp_path: Path
) -> None:
    manager = await apps.manager(**_tls(tls_files, mutual=True))
    address = f"127.0.0.1:{manager.grpc_port}"
    anonymous = await apps.daemon(
        address,
        work_dir=tmp_path / "anon",
        manager__tls__ca_file=tls_files["ca"],
        manager__tls__server_name="localhost",
    )
    trusted = await apps.daemon(
        address,
        work_dir=tmp_path / "trusted",
        manager__tls__ca_file=tls_files["ca"],
        manager__tls__cert_file=tls_files["client_cert"],
        manager__tls__key_file=tls_files["client_key"],
        manager__tls__server_name="localhost",
    )
    await assert_eventually(lambda: manager.store.count_metrics(trusted.node_id), timeout=10)
    await assert_eventually(lambda: anonymous.link.last_error != "", timeout=10)
    assert not anonymous.link.connected and anonymous.link.registrations == 0
    assert await manager.store.get_node(anonymous.node_id) is None
