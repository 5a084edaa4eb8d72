"""DaemonService as served by the daemon: decode, call the supervisor, encode, map errors.

Served here: ListAgents, OperateAgent, GetAgentMetrics, GetAgentLogs, PushUpdate (verified,
then installed in the background: ``opsfleet.daemon.updates``) and GetUpdateStatus (its
outcome). PushUpdate answers UNIMPLEMENTED when the daemon runs without updates. Register,
Heartbeat, ReportMetrics, GetConfig, SyncAgentStates and ReportConfigState are the manager's
side: UNIMPLEMENTED. OperateAgent, GetAgentLogs and PushUpdate are audit-logged
(``opsfleet.daemon.rpc.audit``).
Who may call at all is decided before the servicer (``opsfleet.daemon.rpc.auth``).
"""

from __future__ import annotations

from typing import Protocol

from opsfleet.common.errors import InvalidArgument
from opsfleet.common.rpc_errors import Ctx, grpc_errors, unimplemented
from opsfleet.daemon.rpc.audit import audited, record
from opsfleet.daemon.supervisor.resources import ResourcePoint
from opsfleet.daemon.supervisor.states import AgentView
from opsfleet.daemon.updates.status import UpdateStatus
from opsfleet.proto import daemon_pb2, daemon_pb2_grpc

DEFAULT_OPERATION_TIMEOUT = 60.0
DEFAULT_METRICS_SECONDS = 3600
DEFAULT_LOG_LINES = 100
MAX_LOG_LINES = 1000
MAX_FILTER_CHARS = 1024
# Answer DEADLINE_EXCEEDED ourselves, with a message, just before the caller gives up.
DEADLINE_MARGIN = 0.05
_INT32_MAX = 2**31 - 1
_MANAGER_SIDE = "is served by the manager, not by a daemon"


class AgentControl(Protocol):
    """What the servicer needs from the supervisor (``Supervisor`` is the real one)."""

    def agents(self) -> list[AgentView]: ...

    async def operate(self, agent_id: str, operation: str, timeout: float) -> None: ...

    def resource_history(self, agent_id: str, duration_seconds: float) -> list[ResourcePoint]: ...

    def tail_logs(self, agent_id: str, lines: int, filter: str = "") -> list[str]: ...


class Updates(Protocol):
    """What the servicer needs from the installer (``UpdateManager`` is the real one)."""

    def accept(
        self, component: str, version: str, sha256: str, signature: str, data: bytes, url: str
    ) -> str: ...

    def statuses(self, component: str = "") -> list[UpdateStatus]: ...


def _int32(value: int) -> int:
    return max(0, min(_INT32_MAX, value))


def agent_info(view: AgentView) -> daemon_pb2.AgentInfo:
    return daemon_pb2.AgentInfo(
        id=view.id,
        type=view.type,
        version=view.version,
        status=view.status,
        pid=_int32(view.pid),
        start_time=view.start_time,
        restart_count=_int32(view.restart_count),
        last_heartbeat=view.last_heartbeat,
    )


def data_point(point: ResourcePoint) -> daemon_pb2.ResourceDataPoint:
    return daemon_pb2.ResourceDataPoint(
        timestamp=int(point.timestamp),
        cpu=point.cpu,
        memory_rss=max(0, point.memory_rss),
        memory_vms=max(0, point.memory_vms),
        disk_read_bytes=max(0, point.disk_read_bytes),
        disk_write_bytes=max(0, point.disk_write_bytes),
        open_files=_int32(point.open_files),
    )


class DaemonServicer(daemon_pb2_grpc.DaemonServiceServicer):
    def __init__(
        self,
        agents: AgentControl,
        *,
        updates: Updates | None = None,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT,
    ) -> None:
        self._agents = agents
        self._updates = updates
        self._operation_timeout = operation_timeout

    @grpc_errors
    async def ListAgents(
        self, request: daemon_pb2.ListAgentsRequest, context: Ctx
    ) -> daemon_pb2.ListAgentsResponse:
        views = sorted(self._agents.agents(), key=lambda view: view.id)
        return daemon_pb2.ListAgentsResponse(agents=[agent_info(view) for view in views])

    @grpc_errors
    async def OperateAgent(
        self, request: daemon_pb2.AgentOperationRequest, context: Ctx
    ) -> daemon_pb2.AgentOperationResponse:
        remaining = context.time_remaining()
        timeout = self._operation_timeout
        if remaining is not None:
            timeout = min(timeout, remaining - DEADLINE_MARGIN)
        with audited(context, f"OperateAgent/{request.operation or '-'}", request.agent_id):
            await self._agents.operate(request.agent_id, request.operation, timeout)
        return daemon_pb2.AgentOperationResponse(success=True)

    @grpc_errors
    async def GetAgentMetrics(
        self, request: daemon_pb2.AgentMetricsRequest, context: Ctx
    ) -> daemon_pb2.AgentMetricsResponse:
        duration = request.duration_seconds if request.duration_seconds > 0 else DEFAULT_METRICS_SECONDS
        points = self._agents.resource_history(request.agent_id, duration)
        return daemon_pb2.AgentMetricsResponse(
            agent_id=request.agent_id, data_points=[data_point(point) for point in points]
        )

    @grpc_errors
    async def GetAgentLogs(
        self, request: daemon_pb2.AgentLogsRequest, context: Ctx
    ) -> daemon_pb2.AgentLogsResponse:
        with audited(context, "GetAgentLogs", request.agent_id):
            if len(request.filter) > MAX_FILTER_CHARS:
                raise InvalidArgument(f"filter longer than {MAX_FILTER_CHARS} characters")
            lines = min(request.lines, MAX_LOG_LINES) if request.lines > 0 else DEFAULT_LOG_LINES
            found = self._agents.tail_logs(request.agent_id, lines, request.filter)
        return daemon_pb2.AgentLogsResponse(agent_id=request.agent_id, lines=found)

    @grpc_errors
    async def PushUpdate(self, request: daemon_pb2.UpdateRequest, context: Ctx) -> daemon_pb2.UpdateResponse:
        target = f"{request.component}@{request.version}" if request.version else request.component
        if self._updates is None:
            record(context, "PushUpdate", target, "refused (unimplemented)")
            await unimplemented(context, "updates are not supported by this daemon")
        with audited(context, "PushUpdate", target):
            message = self._updates.accept(
                request.component,
                request.version,
                request.hash,
                request.signature,
                request.update_data,
                request.download_url,
            )
        return daemon_pb2.UpdateResponse(success=True, message=message)

    @grpc_errors
    async def GetUpdateStatus(
        self, request: daemon_pb2.UpdateStatusRequest, context: Ctx
    ) -> daemon_pb2.UpdateStatusResponse:
        found = self._updates.statuses(request.component) if self._updates is not None else []
        return daemon_pb2.UpdateStatusResponse(
            updates=[
                daemon_pb2.UpdateStatus(
                    component=item.component,
                    version=item.version,
                    state=item.state,
                    message=item.message,
                    previous_version=item.previous_version,
                    started_at=item.started_at,
                    finished_at=item.finished_at,
                )
                for item in found
            ]
        )

    async def Register(
        self, request: daemon_pb2.RegisterRequest, context: Ctx
    ) -> daemon_pb2.RegisterResponse:
        await unimplemented(context, f"Register {_MANAGER_SIDE}")

    async def Heartbeat(
        self, request: daemon_pb2.HeartbeatRequest, context: Ctx
    ) -> daemon_pb2.HeartbeatResponse:
        await unimplemented(context, f"Heartbeat {_MANAGER_SIDE}")

    async def ReportMetrics(
        self, request: daemon_pb2.MetricsRequest, context: Ctx
    ) -> daemon_pb2.MetricsResponse:
        await unimplemented(context, f"ReportMetrics {_MANAGER_SIDE}")

    async def GetConfig(self, request: daemon_pb2.ConfigRequest, context: Ctx) -> daemon_pb2.ConfigResponse:
        await unimplemented(context, f"GetConfig {_MANAGER_SIDE}")

    async def SyncAgentStates(
        self, request: daemon_pb2.SyncAgentStatesRequest, context: Ctx
    ) -> daemon_pb2.SyncAgentStatesResponse:
        await unimplemented(context, f"SyncAgentStates {_MANAGER_SIDE}")

    async def ReportConfigState(
        self, request: daemon_pb2.ConfigStateRequest, context: Ctx
    ) -> daemon_pb2.ConfigStateResponse:
        await unimplemented(context, f"ReportConfigState {_MANAGER_SIDE}")
