"""Calls from the Manager into daemons: one channel per node, deadlines, retries for reads.

``DaemonClientPool.client(node_id, address)`` returns a client on the node's channel; the
channel is replaced when the node's address changes and closed after ``idle`` seconds
without calls. gRPC failures become domain errors through the one table in
``opsfleet.common.errors`` (read by ``opsfleet.common.rpc_errors``): NOT_FOUND -> NotFound,
DEADLINE_EXCEEDED -> DeadlineExceeded, UNAVAILABLE -> Unavailable "node unreachable", ...

With the Manager's identity (:meth:`DaemonClientPool.use_identity`) every channel is mutual
TLS: the Manager presents its certificate (``spiffe://opsfleet/manager``), trusts only the
fleet CA, and pins the DNS name of the node it means to call
(``grpc.ssl_target_name_override`` = ``node_dns_name(node_id)``). A daemon that cannot prove
it is that node (another node's certificate, a foreign or expired one, plaintext) fails
the handshake; the caller gets Unavailable "daemon at ADDR did not prove identity of node
X", never a call served by the wrong machine. Without an identity the ``agents.tls.*``
files (or plaintext) are used as configured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from opsfleet.common import rpc as rpc_opts
from opsfleet.common.errors import OpsfleetError, Unavailable
from opsfleet.common.lifecycle import TaskOwner, sleep_or_stop
from opsfleet.common.pki import TLSMaterial, node_dns_name
from opsfleet.common.rpc_errors import error_from_status
from opsfleet.common.tls import channel_credentials
from opsfleet.manager.domain import LiveAgent, ResourcePoint, UpdateOutcome
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")
READ_RETRIES = 2


@dataclass(frozen=True)
class DaemonCallSettings:
    list_timeout: float = 10.0
    operate_timeout: float = 60.0
    metrics_timeout: float = 10.0
    logs_timeout: float = 10.0
    idle: float = 300.0
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_server_name: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca_file or self.tls_cert_file)


# What gRPC reports when the daemon's side of the TLS handshake fails: a certificate of
# another node or another CA, an expired one, a plaintext daemon. (A daemon refusing the
# Manager's certificate just closes the socket: that reads as "unreachable".)
_HANDSHAKE_FAILURES = (
    "handshake failed",
    "hostname verification",
    "verification check failed",
    "no match found for server name",
    "certificate_verify_failed",
)


def identity_failure(exc: grpc.aio.AioRpcError) -> bool:
    """Whether an UNAVAILABLE from a mutual-TLS channel is a failed handshake (not a down host)."""
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNAVAILABLE and any(m in details for m in _HANDSHAKE_FAILURES)


def _translate(node_id: str, address: str, exc: grpc.aio.AioRpcError, *, pinned: bool) -> OpsfleetError:
    code = exc.code()
    details = exc.details() or code.name
    if pinned and identity_failure(exc):
        return Unavailable(f"daemon at {address} did not prove identity of node {node_id}: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"node {node_id} is unreachable: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return error_from_status(code, f"node {node_id} did not answer in time")
    return error_from_status(code, details)


class DaemonClient:
    def __init__(
        self,
        node_id: str,
        channel: grpc.aio.Channel,
        settings: DaemonCallSettings,
        *,
        address: str = "",
        pinned: bool = False,
    ) -> None:
        """``pinned``: the channel verifies the daemon's node identity (handshake failures say so)."""
        self.node_id = node_id
        self.address = address
        self._stub: daemon_pb2_grpc.DaemonServiceAsyncStub = daemon_pb2_grpc.DaemonServiceStub(channel)
        self._settings = settings
        self._pinned = pinned

    async def _call(self, fn: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        attempts = READ_RETRIES + 1 if idempotent else 1
        for attempt in range(attempts):
            try:
                return await fn()
            except grpc.aio.AioRpcError as exc:
                retry = idempotent and exc.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts
                if retry and not (self._pinned and identity_failure(exc)):
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                raise _translate(self.node_id, self.address, exc, pinned=self._pinned) from exc
        raise AssertionError("unreachable")

    async def list_agents(self) -> list[LiveAgent]:
        reply = await self._call(
            lambda: self._stub.ListAgents(
                daemon_pb2.ListAgentsRequest(), timeout=self._settings.list_timeout
            ),
            idempotent=True,
        )
        return [
            LiveAgent(
                agent_id=a.id,
                type=a.type,
                version=a.version,
                status=a.status,
                pid=a.pid,
                start_time=a.start_time,
                restart_count=a.restart_count,
                last_heartbeat=a.last_heartbeat,
            )
            for a in reply.agents
        ]

    async def operate(self, agent_id: str, operation: str, timeout: float | None = None) -> tuple[bool, str]:
        request = daemon_pb2.AgentOperationRequest(agent_id=agent_id, operation=operation)
        deadline = timeout or self._settings.operate_timeout
        reply = await self._call(lambda: self._stub.OperateAgent(request, timeout=deadline), idempotent=False)
        return reply.success, reply.error_message

    async def agent_metrics(self, agent_id: str, duration_seconds: int) -> list[ResourcePoint]:
        request = daemon_pb2.AgentMetricsRequest(agent_id=agent_id, duration_seconds=duration_seconds)
        reply = await self._call(
            lambda: self._stub.GetAgentMetrics(request, timeout=self._settings.metrics_timeout),
            idempotent=True,
        )
        return [
            ResourcePoint(
                timestamp=p.timestamp,
                cpu=p.cpu,
                memory_rss=p.memory_rss,
                memory_vms=p.memory_vms,
                disk_read_bytes=p.disk_read_bytes,
                disk_write_bytes=p.disk_write_bytes,
                open_files=p.open_files,
            )
            for p in reply.data_points
        ]

    async def agent_logs(self, agent_id: str, lines: int, filter_text: str = "") -> list[str]:
        request = daemon_pb2.AgentLogsRequest(agent_id=agent_id, lines=lines, filter=filter_text)
        reply = await self._call(
            lambda: self._stub.GetAgentLogs(request, timeout=self._settings.logs_timeout), idempotent=True
        )
        return list(reply.lines)

    async def push_update(
        self, *, component: str, version: str, download_url: str, sha256: str, signature: str
    ) -> str:
        """PushUpdate (answered at once: the install goes on on the daemon); the daemon's message."""
        request = daemon_pb2.UpdateRequest(
            node_id=self.node_id,
            component=component,
            version=version,
            download_url=download_url,
            hash=sha256,
            signature=signature,
        )
        reply = await self._call(
            lambda: self._stub.PushUpdate(request, timeout=self._settings.list_timeout), idempotent=False
        )
        return reply.message

    async def update_status(self, component: str) -> UpdateOutcome | None:
        request = daemon_pb2.UpdateStatusRequest(component=component)
        reply = await self._call(
            lambda: self._stub.GetUpdateStatus(request, timeout=self._settings.list_timeout), idempotent=True
        )
        for u in reply.updates:
            if u.component == component:
                return UpdateOutcome(
                    u.component, u.version, u.state, u.message, u.previous_version, u.finished_at
                )
        return None


@dataclass
class _Entry:
    address: str
    channel: grpc.aio.Channel
    last_used: float


class DaemonClientPool:
    """One channel per node. ``start()`` runs the idle reaper; ``close()`` closes every channel.

    ``use_identity`` (before ``start()``) switches every channel to mutual TLS as the Manager.
    """

    def __init__(self, settings: DaemonCallSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._stop = asyncio.Event()
        self._tasks = TaskOwner("daemon-clients")
        self._creds: grpc.ChannelCredentials | None = None
        if settings.tls:
            self._creds = channel_credentials(
                ca_file=settings.tls_ca_file,
                cert_file=settings.tls_cert_file,
                key_file=settings.tls_key_file,
                key_prefix="agents.tls",
            )
        self._identity: grpc.ChannelCredentials | None = None

    def use_identity(self, material: TLSMaterial | None) -> None:
        """Dial daemons as the Manager with ``material`` (None: the ``agents.tls`` settings).

        Meant to be called once before ``start()``; a later call (a renewed Manager
        certificate) closes the open channels so the next calls dial with the new one.
        """
        if material is None:
            self._identity = None
        else:
            self._identity = grpc.ssl_channel_credentials(
                root_certificates=material.ca_pem,
                private_key=material.key_pem,
                certificate_chain=material.cert_pem,
            )
            if self._settings.tls:
                log.warning("agents.tls.* is ignored: daemons are dialed with the Manager's fleet identity")
            log.info("daemons are dialed with mutual TLS as the Manager; each must prove its node identity")
        for entry in self._entries.values():
            self._close_later(entry.channel)
        self._entries.clear()

    @property
    def pinned(self) -> bool:
        """Whether each channel verifies the daemon's node identity (an identity is in use)."""
        return self._identity is not None

    async def start(self) -> None:
        self._tasks.spawn("idle-reaper", self._reap_loop())

    def client(self, node_id: str, address: str) -> DaemonClient:
        if not address:
            raise Unavailable(f"node {node_id} has not told the manager where its DaemonService listens")
        entry = self._entries.get(node_id)
        if entry is not None and entry.address != address:
            log.info("node %s moved from %r to %r: new channel", node_id, entry.address, address)
            self._close_later(entry.channel)
            entry = None
        if entry is None:
            entry = _Entry(address, self._open(node_id, address), self._clock())
            self._entries[node_id] = entry
        entry.last_used = self._clock()
        return DaemonClient(node_id, entry.channel, self._settings, address=address, pinned=self.pinned)

    def _open(self, node_id: str, address: str) -> grpc.aio.Channel:
        options: list[tuple[str, Any]] = [*rpc_opts.channel_options()]
        if self._identity is not None:
            options.append(("grpc.ssl_target_name_override", node_dns_name(node_id)))
            return grpc.aio.secure_channel(address, self._identity, options=options)
        if self._creds is None:
            return grpc.aio.insecure_channel(address, options=options)
        if self._settings.tls_server_name:
            options.append(("grpc.ssl_target_name_override", self._settings.tls_server_name))
        return grpc.aio.secure_channel(address, self._creds, options=options)

    def _close_later(self, channel: grpc.aio.Channel) -> None:
        self._tasks.spawn(f"close-{id(channel)}", channel.close(grace=1.0))

    @property
    def open_channels(self) -> int:
        return len(self._entries)

    async def close_idle(self) -> int:
        cutoff = self._clock() - self._settings.idle
        idle = [node for node, e in self._entries.items() if e.last_used < cutoff]
        for node in idle:
            await self._entries.pop(node).channel.close(grace=None)
        return len(idle)

    async def _reap_loop(self) -> None:
        while not await sleep_or_stop(self._stop, min(60.0, self._settings.idle / 2)):
            await self.close_idle()

    async def close(self) -> None:
        self._stop.set()
        await self._tasks.stop()
        for entry in self._entries.values():
            await entry.channel.close(grace=None)
        self._entries.clear()
