"""Agents across the fleet: a filtered, paged list, and one operation on one agent of every
node a label selector picks, run through :class:`AgentOpsService` on each node with bounded
parallelism. Every node's outcome is its own result and its own audit entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from opsfleet.common.errors import InvalidArgument, OpsfleetError
from opsfleet.common.validation import MAX_AGENT_STATUS, check_agent_id, check_text, printable
from opsfleet.manager.domain import AgentFilter, FleetAgent
from opsfleet.manager.services.agent_ops import AgentOpsService
from opsfleet.manager.services.fleet import MAX_TEXT_FILTER, parse_label_filters
from opsfleet.manager.services.paging import MAX_PAGE_SIZE, Page, page_window

log = logging.getLogger(__name__)

MAX_PARALLEL = 100
MAX_BULK_NODES = 10_000


class FleetAgentStore(Protocol):
    async def page_agents(self, flt: AgentFilter, offset: int, limit: int) -> tuple[list[FleetAgent], int]:
        """Ordered by agent id, hostname, node id; (page, total)."""
        ...


AuditWriter = Callable[[str, str, bool, str], Awaitable[None]]
"""(username, target, success, detail): one audit entry."""


@dataclass(frozen=True)
class BulkResult:
    node_id: str
    hostname: str
    success: bool
    error: str = ""
    status: str = ""  # the agent's state right after, when the daemon told it
    pid: int = 0
    operation_id: int = 0


def make_agent_filter(
    agent_id: str, type_: str, status: str, selector: Sequence[str], text: str
) -> AgentFilter:
    if agent_id:
        check_agent_id(agent_id)
    check_text("type", type_, 64)
    check_text("state", status, MAX_AGENT_STATUS)
    check_text("q", text, MAX_TEXT_FILTER)
    return AgentFilter(
        agent_id=agent_id,
        type=type_.strip(),
        status=status.strip(),
        labels=parse_label_filters(selector),
        text=text.strip(),
    )


class FleetAgentService:
    def __init__(self, store: FleetAgentStore, agent_ops: AgentOpsService, audit: AuditWriter) -> None:
        self._store = store
        self._ops = agent_ops
        self._audit = audit

    async def page(self, flt: AgentFilter, page: int, page_size: int) -> Page[FleetAgent]:
        offset, limit = page_window(page, page_size)
        items, total = await self._store.page_agents(flt, offset, limit)
        return Page(items, page, page_size, total)

    async def targets(self, agent_id: str, selector: Sequence[str], all_nodes: bool) -> list[FleetAgent]:
        """The nodes a bulk operation on ``agent_id`` would reach (every stored, not removed copy)."""
        check_agent_id(agent_id)
        flt = AgentFilter(agent_id=agent_id, labels=parse_label_filters(selector))
        if not flt.labels and not all_nodes:
            raise InvalidArgument("selector is required (key=value), or all_nodes to reach every node")
        found: list[FleetAgent] = []
        while True:
            items, total = await self._store.page_agents(flt, len(found), MAX_PAGE_SIZE)
            found.extend(items)
            if not items or len(found) >= total:
                break
            if len(found) > MAX_BULK_NODES:
                raise InvalidArgument(f"the selector reaches more than {MAX_BULK_NODES} nodes")
        return found

    async def bulk_operate(
        self,
        agent_id: str,
        operation: str,
        targets: Sequence[FleetAgent],
        *,
        max_parallel: int,
        username: str,
        on_result: Callable[[BulkResult], None] | None = None,
    ) -> list[BulkResult]:
        """``operation`` on ``agent_id`` of each target, at most ``max_parallel`` at a time;
        results in the order of ``targets``. One node's failure never stops the others."""
        if not 1 <= max_parallel <= MAX_PARALLEL:
            raise InvalidArgument(f"max_parallel must be 1..{MAX_PARALLEL}")
        gate = asyncio.Semaphore(max_parallel)

        async def one(target: FleetAgent) -> BulkResult:
            node_id = target.agent.node_id
            async with gate:
                try:
                    record, live = await self._ops.operate_and_report(node_id, agent_id, operation, username)
                    result = BulkResult(
                        node_id,
                        target.hostname,
                        record.success,
                        record.error,
                        live.status if live else "",
                        live.pid if live else 0,
                        record.id,
                    )
                except OpsfleetError as exc:
                    result = BulkResult(node_id, target.hostname, False, printable(exc.message, 1024))
            detail = f"operation={operation} bulk" + ("" if result.success else f": {result.error}")
            try:
                await self._audit(username, f"node_id={node_id} agent_id={agent_id}", result.success, detail)
            except Exception:
                log.exception("could not write the audit entry of %s on node %s", operation, node_id)
            if on_result is not None:
                on_result(result)
            return result

        results = await asyncio.gather(*(one(t) for t in targets))
        ok = sum(r.success for r in results)
        log.info(
            "bulk %s of agent %s by %s: %d of %d nodes ok", operation, agent_id, username, ok, len(results)
        )
        return list(results)
