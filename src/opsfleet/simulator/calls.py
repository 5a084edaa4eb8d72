"""The simulator's seam to the Manager: a :class:`Caller` per worker, and its gRPC implementation.

Calls return the gRPC status code name (``"OK"``, ``"NOT_FOUND"``, ``"UNAVAILABLE"``, ...)
instead of raising, so node logic and statistics stay free of gRPC types. This is the only
module of the simulator that touches generated proto code.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import grpc

from opsfleet.common import rpc as rpc_opts
from opsfleet.common.tls import channel_credentials
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc
from opsfleet.simulator.config import TlsFiles
from opsfleet.simulator.payloads import AgentReport, NodeIdentity
from opsfleet.simulator.stats import OK

SUCCESS_FALSE = "SUCCESS_FALSE"
"""Pseudo status for an OK reply with ``success=false`` (a contract violation)."""


class Method(enum.StrEnum):
    REGISTER = "RegisterNode"
    HEARTBEAT = "Heartbeat"
    METRICS = "ReportMetrics"
    SYNC = "SyncAgentStates"
    GET_CONFIG = "GetConfig"


class Caller(Protocol):
    """Calls the Manager on behalf of simulated nodes; safe for concurrent use on one loop.

    ``start()`` before the first call, ``close()`` after the last; ``close()`` is idempotent.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def register(self, node: NodeIdentity) -> str: ...

    async def heartbeat(self, node: NodeIdentity, timestamp: int) -> str: ...

    async def report_metrics(
        self, node: NodeIdentity, timestamp: int, metrics: Mapping[str, Mapping[str, float]]
    ) -> str: ...

    async def sync_agents(self, node: NodeIdentity, states: Sequence[AgentReport]) -> str: ...

    def config_hash(self, node: NodeIdentity) -> str:
        """The config hash of the node's last answered heartbeat ("" when none)."""
        ...

    def enrolled(self) -> int:
        """Nodes that have enrolled so far (0 when the nodes do not enroll)."""
        ...

    async def get_config(self, node: NodeIdentity) -> tuple[str, str]:
        """GetConfig(node, "daemon"): the status code and the hash of the document received."""
        ...


class _Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.manager = manager_pb2_grpc.ManagerServiceStub(channel)
        self.daemon = daemon_pb2_grpc.DaemonServiceStub(channel)


class GrpcCaller:
    """``channels`` HTTP/2 connections to ``target``; node ``i`` always uses channel ``i % channels``.

    ``target`` may name several Manager replicas (``HOST:PORT,HOST:PORT``): channel ``j``
    goes to replica ``j % replicas``, so the simulated fleet is spread over them.

    Every channel gets its own subchannel pool, otherwise gRPC would share one connection
    between channels with equal arguments.
    """

    def __init__(self, target: str, *, channels: int, timeout: float, tls: TlsFiles | None = None) -> None:
        self._targets = [t.strip() for t in target.split(",") if t.strip()]
        self._target = self._targets[0]
        self._count = max(channels, len(self._targets))
        self._timeout = timeout
        self._tls = tls
        self._channels: list[grpc.aio.Channel] = []
        self._stubs: list[_Stubs] = []
        self._hashes: dict[str, str] = {}

    async def start(self) -> None:
        options: list[tuple[str, Any]] = [
            *rpc_opts.channel_options(),
            *rpc_opts.reconnect_options(),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        creds = None
        if self._tls is not None:
            creds = channel_credentials(
                ca_file=self._tls.ca_file,
                cert_file=self._tls.cert_file,
                key_file=self._tls.key_file,
                key_prefix="--tls",
            )
        for i in range(self._count):
            target = self._targets[i % len(self._targets)]
            if creds is not None:
                channel = grpc.aio.secure_channel(target, creds, options=options)
            else:
                channel = grpc.aio.insecure_channel(target, options=options)
            self._channels.append(channel)
            self._stubs.append(_Stubs(channel))

    async def close(self) -> None:
        channels, self._channels, self._stubs = self._channels, [], []
        for channel in channels:
            await channel.close(grace=None)

    def _for(self, node: NodeIdentity) -> _Stubs:
        return self._stubs[node.index % len(self._stubs)]

    async def register(self, node: NodeIdentity) -> str:
        request = manager_pb2.RegisterNodeRequest(
            node_id=node.node_id,
            hostname=node.hostname,
            ip=node.ip,
            os=node.os,
            arch=node.arch,
            labels=node.labels,
            daemon_version=node.daemon_version,
            agent_version=node.agent_version,
        )
        try:
            reply = await self._for(node).manager.RegisterNode(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return OK if reply.success else SUCCESS_FALSE

    async def heartbeat(self, node: NodeIdentity, timestamp: int) -> str:
        request = manager_pb2.HeartbeatRequest(node_id=node.node_id, timestamp=timestamp)
        try:
            reply = await self._for(node).manager.Heartbeat(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        if reply.config_hash:
            self._hashes[node.node_id] = reply.config_hash
        return OK if reply.success else SUCCESS_FALSE

    def config_hash(self, node: NodeIdentity) -> str:
        return self._hashes.get(node.node_id, "")

    def enrolled(self) -> int:
        return 0

    async def get_config(self, node: NodeIdentity) -> tuple[str, str]:
        request = daemon_pb2.ConfigRequest(node_id=node.node_id, config_type="daemon")
        try:
            reply = await self._for(node).daemon.GetConfig(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, ""
        return (OK if reply.success else SUCCESS_FALSE), reply.config_hash

    async def report_metrics(
        self, node: NodeIdentity, timestamp: int, metrics: Mapping[str, Mapping[str, float]]
    ) -> str:
        request = manager_pb2.ReportMetricsRequest(
            node_id=node.node_id,
            metrics=[
                manager_pb2.MetricData(type=type_, timestamp=timestamp, values=values)
                for type_, values in metrics.items()
            ],
        )
        try:
            reply = await self._for(node).manager.ReportMetrics(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return OK if reply.success else SUCCESS_FALSE

    async def sync_agents(self, node: NodeIdentity, states: Sequence[AgentReport]) -> str:
        request = daemon_pb2.SyncAgentStatesRequest(
            node_id=node.node_id,
            states=[
                daemon_pb2.AgentState(
                    agent_id=s.agent_id,
                    status=s.status,
                    pid=s.pid,
                    last_heartbeat=s.last_heartbeat,
                    type=s.type,
                    version=s.version,
                )
                for s in states
            ],
        )
        try:
            reply = await self._for(node).daemon.SyncAgentStates(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return OK if reply.success else SUCCESS_FALSE
