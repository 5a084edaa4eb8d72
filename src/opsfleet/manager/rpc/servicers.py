"""ManagerService and the manager side of DaemonService: decode, call a service, encode."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import grpc

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.rpc_errors import grpc_errors, unimplemented
from opsfleet.manager.domain import AgentState, NodeRegistration
from opsfleet.manager.rpc.identity_guard import OPEN, IdentityGuard
from opsfleet.manager.services.agents import AgentService
from opsfleet.manager.services.configs import ConfigService
from opsfleet.manager.services.metrics import MetricService, RawMetric
from opsfleet.manager.services.nodes import NodeService
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc, manager_pb2, manager_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]
RpcObserver = Callable[[str, str, float], None] | None


def _ingest_message(accepted: int, dropped: int) -> str:
    msg = f"stored {accepted} samples"
    if dropped:
        msg += f"; dropped {dropped} non-finite values"
    return msg


class ManagerServicer(manager_pb2_grpc.ManagerServiceServicer):
    SERVICE = "manager.ManagerService"

    def __init__(
        self,
        nodes: NodeService,
        metrics: MetricService,
        *,
        configs: ConfigService | None = None,
        observe_rpc: RpcObserver = None,
        guard: IdentityGuard = OPEN,
    ) -> None:
        self._nodes = nodes
        self._metrics = metrics
        self._configs = configs
        self.observe_rpc = observe_rpc
        self._guard = guard

    @grpc_errors
    async def RegisterNode(
        self, request: manager_pb2.RegisterNodeRequest, context: Ctx
    ) -> manager_pb2.RegisterNodeResponse:
        await self._guard.check(context, request.node_id)
        await self._guard.saw_registration(request.node_id, request.hostname, request.boot_id)
        created = await self._nodes.register(
            NodeRegistration(
                node_id=request.node_id,
                hostname=request.hostname,
                ip=request.ip,
                os=request.os,
                arch=request.arch,
                labels=self._guard.labels(request.node_id, dict(request.labels)),
                daemon_version=request.daemon_version,
                agent_version=request.agent_version,
                daemon_address=request.daemon_address,
            )
        )
        word = "registered" if created else "re-registered"
        return manager_pb2.RegisterNodeResponse(success=True, message=f"node {request.node_id} {word}")

    @grpc_errors
    async def Heartbeat(
        self, request: manager_pb2.HeartbeatRequest, context: Ctx
    ) -> manager_pb2.HeartbeatResponse:
        await self._guard.check(context, request.node_id)
        await self._nodes.heartbeat(request.node_id)
        config_hash = self._configs.hash_for(request.node_id) if self._configs is not None else ""
        return manager_pb2.HeartbeatResponse(success=True, message="ok", config_hash=config_hash)

    @grpc_errors
    async def ReportMetrics(
        self, request: manager_pb2.ReportMetricsRequest, context: Ctx
    ) -> manager_pb2.ReportMetricsResponse:
        await self._guard.check(context, request.node_id)
        result = await self._metrics.ingest(
            request.node_id, (RawMetric(m.type, m.timestamp, m.values) for m in request.metrics)
        )
        return manager_pb2.ReportMetricsResponse(
            success=True,
            message=_ingest_message(result.accepted, result.dropped_values),
            accepted=result.accepted,
            dropped_values=result.dropped_values,
        )


def _parse_int(text: str) -> float:
    # Values are doubles on the wire; an integer beyond the double range is a bad document,
    # not a crash in float() later on.
    number = float(text)
    if math.isinf(number):
        raise InvalidArgument(f"data: an integer of {len(text)} digits is beyond the range of a double")
    return number


def parse_metrics_document(data: bytes, timestamp: int) -> list[RawMetric]:
    """The JSON document of DaemonService.ReportMetrics: ``{type: {key: number}}``.

    Every way it can be malformed (bytes that are not UTF-8, not JSON, nested too deep,
    integers beyond a double, wrong shapes) is InvalidArgument."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_int=_parse_int) if data else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"data is not valid JSON: {exc}") from exc
    except RecursionError:
        raise InvalidArgument("data is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than sys.get_int_max_str_digits() digits
        raise InvalidArgument(f"data is not valid JSON: {str(exc)[:120]}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument("data must be a JSON object of metric type -> {key: number}")
    out: list[RawMetric] = []
    for type_, values in doc.items():
        if not isinstance(values, dict):
            raise InvalidArgument(f"data[{type_[:40]!r}] must be an object of key -> number")
        out.append(RawMetric(type_, timestamp, values))
    return out


class DaemonServiceServicer(daemon_pb2_grpc.DaemonServiceServicer):
    """The RPCs of DaemonService that the manager serves; the daemon's answer UNIMPLEMENTED."""

    SERVICE = "proto.DaemonService"

    def __init__(
        self,
        nodes: NodeService,
        metrics: MetricService,
        agents: AgentService,
        configs: ConfigService,
        *,
        observe_rpc: RpcObserver = None,
        guard: IdentityGuard = OPEN,
    ) -> None:
        self.observe_rpc = observe_rpc
        self._guard = guard
        self._nodes = nodes
        self._metrics = metrics
        self._agents = agents
        self._configs = configs

    @grpc_errors
    async def Register(
        self, request: daemon_pb2.RegisterRequest, context: Ctx
    ) -> daemon_pb2.RegisterResponse:
        if self._guard.enforcing:
            # Under mTLS the node is the one the certificate names, never one found by hostname.
            node_id = self._guard.caller_node(context)
            await self._guard.check(context, node_id)
            created = await self._nodes.register(
                NodeRegistration(
                    node_id=node_id,
                    hostname=request.hostname,
                    ip=request.ip,
                    os=request.os,
                    arch=request.arch,
                    labels=self._guard.labels(node_id, dict(request.labels)),
                    daemon_version=request.daemon_version,
                    agent_version=request.agent_version,
                )
            )
        else:
            node_id, created = await self._nodes.register_assigned(
                NodeRegistration(
                    node_id="",
                    hostname=request.hostname,
                    ip=request.ip,
                    os=request.os,
                    arch=request.arch,
                    labels=dict(request.labels),
                    daemon_version=request.daemon_version,
                    agent_version=request.agent_version,
                )
            )
        word = "registered" if created else "re-registered"
        return daemon_pb2.RegisterResponse(node_id=node_id, success=True, message=f"node {word}")

    @grpc_errors
    async def Heartbeat(
        self, request: daemon_pb2.HeartbeatRequest, context: Ctx
    ) -> daemon_pb2.HeartbeatResponse:
        await self._guard.check(context, request.node_id)
        await self._nodes.heartbeat(request.node_id)
        config_hash = self._configs.hash_for(request.node_id)
        return daemon_pb2.HeartbeatResponse(success=True, message="ok", config_hash=config_hash)

    @grpc_errors
    async def ReportMetrics(
        self, request: daemon_pb2.MetricsRequest, context: Ctx
    ) -> daemon_pb2.MetricsResponse:
        await self._guard.check(context, request.node_id)
        await self._nodes.ensure_known(request.node_id)
        raw = parse_metrics_document(request.data, request.timestamp or int(time.time()))
        result = await self._metrics.ingest(request.node_id, raw)
        return daemon_pb2.MetricsResponse(
            success=True, message=_ingest_message(result.accepted, result.dropped_values)
        )

    @grpc_errors
    async def GetConfig(self, request: daemon_pb2.ConfigRequest, context: Ctx) -> daemon_pb2.ConfigResponse:
        await self._guard.check(context, request.node_id)
        data, config_hash = await self._configs.get(request.node_id, request.config_type)
        return daemon_pb2.ConfigResponse(
            success=True, message="ok", config_data=data, config_hash=config_hash
        )

    @grpc_errors
    async def ReportConfigState(
        self, request: daemon_pb2.ConfigStateRequest, context: Ctx
    ) -> daemon_pb2.ConfigStateResponse:
        await self._guard.check(context, request.node_id)
        await self._configs.report(request.node_id, request.config_hash, request.state, request.error)
        return daemon_pb2.ConfigStateResponse(success=True, message=f"config state {request.state} noted")

    @grpc_errors
    async def SyncAgentStates(
        self, request: daemon_pb2.SyncAgentStatesRequest, context: Ctx
    ) -> daemon_pb2.SyncAgentStatesResponse:
        await self._guard.check(context, request.node_id)
        states = [
            AgentState(
                agent_id=s.agent_id,
                type=s.type,
                version=s.version,
                status=s.status,
                pid=s.pid,
                last_heartbeat=s.last_heartbeat,
                restart_count=s.restart_count,
                reason=s.reason,
            )
            for s in request.states
        ]
        await self._agents.sync_states(request.node_id, states)
        return daemon_pb2.SyncAgentStatesResponse(success=True, message=f"synced {len(states)} agents")

    async def ListAgents(self, request: Any, context: Ctx) -> Any:
        return await unimplemented(context, "ListAgents is served by the daemon, not by this process")

    async def OperateAgent(self, request: Any, context: Ctx) -> Any:
        return await unimplemented(context, "OperateAgent is served by the daemon, not by this process")

    async def GetAgentMetrics(self, request: Any, context: Ctx) -> Any:
        return await unimplemented(context, "GetAgentMetrics is served by the daemon, not by this process")

    async def PushUpdate(self, request: Any, context: Ctx) -> Any:
        return await unimplemented(context, "PushUpdate is served by the daemon, not by this process")

    async def GetAgentLogs(self, request: Any, context: Ctx) -> Any:
        return await unimplemented(context, "GetAgentLogs is served by the daemon, not by this process")

    async def GetUpdateStatus(self, request: Any, context: Ctx) -> Any:
        return await unimplemented(context, "GetUpdateStatus is served by the daemon, not by this process")
