"""Support for the zero-trust tests: a Manager with the fleet CA, enrolled identities, mTLS stubs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import httpx

from opsfleet.common.pki import MANAGER_DNS_NAME, TLSMaterial, load_node_material
from opsfleet.daemon.enroll import EnrollResult, enroll
from opsfleet.daemon.identity import HostFacts
from opsfleet.manager.app import ManagerApp
from opsfleet.proto import daemon_pb2_grpc, enrollment_pb2_grpc, manager_pb2, manager_pb2_grpc

ADMIN_PASSWORD = "fleet-secret-pass-7731"


def node_channel(app: ManagerApp, material: TLSMaterial | None) -> grpc.aio.Channel:
    """A channel to the Manager's main port presenting ``material`` (None: TLS, no client cert)."""
    assert app.tls_material is not None
    creds = grpc.ssl_channel_credentials(
        root_certificates=app.tls_material.ca_pem,
        private_key=material.key_pem if material else None,
        certificate_chain=material.cert_pem if material else None,
    )
    options = [("grpc.ssl_target_name_override", MANAGER_DNS_NAME)]
    return grpc.aio.secure_channel(f"127.0.0.1:{app.grpc_port}", creds, options=options)


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.manager = manager_pb2_grpc.ManagerServiceStub(channel)
        self.daemon = daemon_pb2_grpc.DaemonServiceStub(channel)
        self.enrollment = enrollment_pb2_grpc.EnrollmentServiceStub(channel)

    async def register(self, node_id: str, *, hostname: str = "host-a", boot_id: str = "boot-a") -> Any:
        return await self.manager.RegisterNode(
            manager_pb2.RegisterNodeRequest(
                node_id=node_id, hostname=hostname, ip="10.0.0.9", os="linux", arch="amd64", boot_id=boot_id
            ),
            timeout=5,
        )

    async def heartbeat(self, node_id: str) -> Any:
        return await self.manager.Heartbeat(
            manager_pb2.HeartbeatRequest(node_id=node_id, timestamp=int(time.time())), timeout=5
        )

    async def metrics(self, node_id: str) -> Any:
        metric = manager_pb2.MetricData(type="cpu", timestamp=int(time.time()), values={"usage_percent": 5.0})
        return await self.manager.ReportMetrics(
            manager_pb2.ReportMetricsRequest(node_id=node_id, metrics=[metric]), timeout=5
        )


class Fleet:
    """A secure Manager plus helpers to make tokens and enroll nodes into work dirs."""

    def __init__(self, app: ManagerApp, root: Path) -> None:
        self.app = app
        self.root = root
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}", timeout=10.0)
        self.channels: list[grpc.aio.Channel] = []
        self._admin: dict[str, str] | None = None

    @property
    def enroll_address(self) -> str:
        return f"127.0.0.1:{self.app.enrollment_port}"

    @property
    def fingerprint(self) -> str:
        assert self.app.ca is not None
        return self.app.ca.fingerprint

    async def close(self) -> None:
        await self.http.aclose()
        for channel in self.channels:
            await channel.close()

    async def admin(self) -> dict[str, str]:
        if self._admin is None:
            r = await self.http.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 200, r.text
            self._admin = {"Authorization": f"Bearer {r.json()['data']['token']}"}
        return self._admin

    async def token(
        self, max_uses: int = 1, expires_in: float = 3600, labels: dict[str, str] | None = None
    ) -> str:
        assert self.app.enrollment is not None
        created = await self.app.enrollment.create_token(
            max_uses=max_uses, expires_in=expires_in, labels=labels or {}, created_by="test"
        )
        return created.secret

    async def enroll_token_then_revoke(self) -> str:
        """A token revoked through the REST API; its plaintext."""
        r = await self.http.post(
            "/api/v1/enrollment-tokens", json={"max_uses": 5, "expires_in": 600}, headers=await self.admin()
        )
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        r = await self.http.delete(f"/api/v1/enrollment-tokens/{data['id']}", headers=await self.admin())
        assert r.status_code == 200 and r.json()["data"]["state"] == "revoked", r.text
        token: str = data["token"]
        return token

    async def enroll(self, node_id: str, token: str, *, fingerprint: str | None = None) -> EnrollResult:
        """Enroll like ``opsfleet daemon enroll`` does (in a thread: it is blocking)."""
        return await asyncio.to_thread(
            enroll,
            address=self.enroll_address,
            token=token,
            ca_fingerprint=fingerprint or self.fingerprint,
            work_dir=self.root / node_id,
            node_id=node_id,
            host=HostFacts(hostname=f"host-{node_id}"),
        )

    def material(self, node_id: str) -> TLSMaterial:
        material = load_node_material(self.root / node_id)
        assert material is not None
        return material

    def stubs(self, material: TLSMaterial | None) -> Stubs:
        channel = node_channel(self.app, material)
        self.channels.append(channel)
        return Stubs(channel)

    async def enrolled(self, node_id: str, **token_kw: Any) -> Stubs:
        """Enroll ``node_id`` with a fresh token; stubs speaking mTLS as that node."""
        await self.enroll(node_id, await self.token(**token_kw))
        return self.stubs(self.material(node_id))

    def rpc_codes(self) -> set[str]:
        return {code for _method, code in self.app.telemetry._rpc_children}
