"""Operating agents on nodes through their daemons: live listing, start/stop/restart,
resource history and logs. Every operation is recorded with who asked, when and how it ended.

The daemon side is reached through a :class:`DaemonGateway` (the gRPC client pool in
production, a fake in tests); errors arrive as domain errors (NotFound, InvalidArgument,
Unavailable = node unreachable, DeadlineExceeded = node timed out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from opsfleet.common.errors import InvalidArgument, OpsfleetError, Unavailable
from opsfleet.common.validation import check_agent_fields, check_agent_id, printable
from opsfleet.manager.domain import AgentState, LiveAgent, Operation, OperationRecord, ResourcePoint
from opsfleet.manager.services.nodes import NodeService
from opsfleet.manager.services.timeline import TimelineService
from opsfleet.manager.store.base import Store

log = logging.getLogger(__name__)

MAX_LOG_LINES = 1000
MAX_METRICS_DURATION = 7 * 86400


class DaemonCalls(Protocol):
    async def list_agents(self) -> list[LiveAgent]: ...

    async def operate(
        self, agent_id: str, operation: str, timeout: float | None = None
    ) -> tuple[bool, str]: ...

    async def agent_metrics(self, agent_id: str, duration_seconds: int) -> list[ResourcePoint]: ...

    async def agent_logs(self, agent_id: str, lines: int, filter_text: str = "") -> list[str]: ...


class DaemonGateway(Protocol):
    def client(self, node_id: str, address: str) -> DaemonCalls: ...


class AgentOpsService:
    def __init__(
        self,
        store: Store,
        nodes: NodeService,
        gateway: DaemonGateway,
        *,
        clock: Callable[[], float] = time.time,
        timeline: TimelineService | None = None,
    ) -> None:
        self._store = store
        self._nodes = nodes
        self._gateway = gateway
        self._clock = clock
        self._timeline = timeline

    async def _client(self, node_id: str) -> DaemonCalls:
        node = await self._nodes.get(node_id)
        return self._gateway.client(node.node_id, node.daemon_address)

    async def sync_live(self, node_id: str) -> list[LiveAgent]:
        """Ask the daemon for its agents now and store them (agents it no longer has become removed)."""
        client = await self._client(node_id)
        live = await client.list_agents()
        try:
            for index, a in enumerate(live):
                check_agent_fields(index, a.agent_id, a.type, a.version, a.status)
        except InvalidArgument as exc:  # the daemon's fault, not the caller's: a bad gateway
            raise Unavailable(f"node {node_id} reported an invalid agent: {exc.message}") from exc
        states = [
            AgentState(a.agent_id, a.type, a.version, a.status, a.pid, a.last_heartbeat, a.restart_count)
            for a in live
        ]
        await self._store.sync_agents(node_id, states, self._clock())
        return live

    async def operate(self, node_id: str, agent_id: str, operation: str, username: str) -> OperationRecord:
        """Run start/stop/restart on the daemon; the outcome is recorded whether it worked or not."""
        try:
            op = Operation(operation)
        except ValueError:
            raise InvalidArgument(
                f"operation must be start, stop or restart, got {operation[:20]!r}"
            ) from None
        check_agent_id(agent_id)
        client = await self._client(node_id)
        requested = self._clock()
        error: OpsfleetError | None = None
        success = False
        message = ""
        if self._timeline is not None:
            self._timeline.requested(node_id, agent_id, op.value, username)
        try:
            success, message = await client.operate(agent_id, op.value)
        except OpsfleetError as exc:
            error = exc
            message = exc.message
        record = OperationRecord(
            id=0,
            node_id=node_id,
            agent_id=agent_id,
            operation=op.value,
            username=username,
            requested_at=requested,
            finished_at=self._clock(),
            success=success and error is None,
            error=printable(message, 1024) if not success or error else "",
        )
        record_id = await self._store.record_operation(record)
        if self._timeline is not None:
            await self._timeline.operation(
                node_id, agent_id, op.value, username, record.success, record.error
            )
        log.info(
            "agent %s on node %s: %s by %s -> %r",
            agent_id,
            node_id,
            op.value,
            username or "-",
            "ok" if record.success else f"failed: {record.error}",
        )
        if error is not None:
            raise error
        return OperationRecord(**{**record.__dict__, "id": record_id})

    async def operate_and_report(
        self, node_id: str, agent_id: str, operation: str, username: str
    ) -> tuple[OperationRecord, LiveAgent | None]:
        """:meth:`operate`, then the agent as its daemon reports it right after (new PID and
        state); None when that listing fails (the operation's outcome stands)."""
        record = await self.operate(node_id, agent_id, operation, username)
        if not record.success:
            return record, None
        try:
            live = await (await self._client(node_id)).list_agents()
        except OpsfleetError as exc:
            log.info("agent %s on node %s: no state after %s: %s", agent_id, node_id, operation, exc.message)
            return record, None
        return record, next((a for a in live if a.agent_id == agent_id), None)

    async def agent_metrics(self, node_id: str, agent_id: str, duration_seconds: int) -> list[ResourcePoint]:
        check_agent_id(agent_id)
        if not 1 <= duration_seconds <= MAX_METRICS_DURATION:
            raise InvalidArgument(f"duration must be 1..{MAX_METRICS_DURATION} seconds")
        return await (await self._client(node_id)).agent_metrics(agent_id, duration_seconds)

    async def agent_logs(self, node_id: str, agent_id: str, lines: int, filter_text: str = "") -> list[str]:
        check_agent_id(agent_id)
        if not 1 <= lines <= MAX_LOG_LINES:
            raise InvalidArgument(f"lines must be 1..{MAX_LOG_LINES}")
        return await (await self._client(node_id)).agent_logs(agent_id, lines, filter_text)

    async def operations(
        self, node_id: str, agent_id: str | None = None, limit: int = 100
    ) -> list[OperationRecord]:
        await self._nodes.get(node_id)
        if agent_id is not None:
            check_agent_id(agent_id)
        return await self._store.list_operations(node_id, agent_id, limit)
