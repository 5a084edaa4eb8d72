"""/api/v1/agents and /api/v1/events: agents across the fleet (list, bulk operations by node
selector) and the fleet-wide node timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from opsfleet.common.errors import InvalidArgument
from opsfleet.manager.domain import FleetAgent, NodeEvent
from opsfleet.manager.services.fleet_agents import BulkResult, make_agent_filter
from opsfleet.manager.services.paging import DEFAULT_PAGE_SIZE
from opsfleet.manager.services.timeline import make_event_filter
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok, paged
from opsfleet.manager.web.routes_admin import PageNo, PageSize
from opsfleet.manager.web.schemas import BulkOperateBody, agent_json, event_json
from opsfleet.manager.web.security import CurrentUser, OperatorUser

router = APIRouter(prefix="/api/v1", tags=["fleet"], route_class=AuditedRoute)

Selector = Annotated[
    list[str] | None, Query(description="node labels key=value, repeatable or comma-separated; all match")
]


def fleet_agent_json(item: FleetAgent) -> dict[str, Any]:
    return {
        **agent_json(item.agent),
        "hostname": item.hostname,
        "node_status": item.node_status,
        "labels": item.labels,
    }


def bulk_json(result: BulkResult) -> dict[str, Any]:
    return {
        "node_id": result.node_id,
        "hostname": result.hostname,
        "success": result.success,
        "error": result.error,
        "status": result.status,
        "pid": result.pid,
        "operation_id": result.operation_id,
    }


def timeline_json(item: tuple[NodeEvent, str]) -> dict[str, Any]:
    event, hostname = item
    return {**event_json(event), "node_id": event.node_id, "hostname": hostname}


def parse_since(text: str) -> float:
    """RFC3339 (``2026-01-31T12:00:00Z``) or epoch seconds; 0 for none."""
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"since must be RFC3339 or epoch seconds, got {text[:40]!r}") from None


@router.get("/agents", name="fleet.agents", summary="Agents across the fleet, paged, with filters")
async def list_agents(
    ctx: Ctx,
    _user: CurrentUser,
    page: PageNo = 1,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
    agent_id: Annotated[str, Query(max_length=128, description="exactly this agent id")] = "",
    type: Annotated[str, Query(max_length=64, description="agent type")] = "",
    state: Annotated[str, Query(max_length=32, description="running, stopped, error, ..., removed")] = "",
    selector: Selector = None,
    q: Annotated[str, Query(max_length=128, description="text in agent id, node id or hostname")] = "",
) -> dict[str, Any]:
    flt = make_agent_filter(agent_id, type, state, selector or [], q)
    result = await ctx.fleet_agents.page(flt, page, page_size)
    return paged(result, [fleet_agent_json(a) for a in result.items])


@router.post(
    "/agents/{agent_id}/operate",
    name="fleet.agents.operate",
    summary="start, stop or restart one agent on every node a selector picks (operator, admin)",
)
async def bulk_operate(
    agent_id: str, body: BulkOperateBody, request: Request, ctx: Ctx, user: OperatorUser
) -> dict[str, Any]:
    targets = await ctx.fleet_agents.targets(agent_id, body.selector, body.all_nodes)
    request.state.audit_detail = (
        f"operation={body.operation} selector={','.join(body.selector) or '*'} nodes={len(targets)}"
    )
    if body.dry_run:
        results = [BulkResult(t.agent.node_id, t.hostname, False, "dry run") for t in targets]
    else:
        results = await ctx.fleet_agents.bulk_operate(
            agent_id, body.operation, targets, max_parallel=body.max_parallel, username=user.username
        )
    succeeded = sum(r.success for r in results)
    data = {
        "agent_id": agent_id,
        "operation": body.operation,
        "dry_run": body.dry_run,
        "results": [bulk_json(r) for r in results],
        "succeeded": succeeded,
        "failed": 0 if body.dry_run else len(results) - succeeded,
    }
    return ok(data, "success" if body.dry_run or succeeded == len(results) else "some nodes failed")


@router.get("/events", name="fleet.events", summary="Node events across the fleet, newest first, paged")
async def events(
    ctx: Ctx,
    _user: CurrentUser,
    page: PageNo = 1,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
    node_id: Annotated[str, Query(max_length=128, description="only this node")] = "",
    kind: Annotated[list[str] | None, Query(description="event kinds, repeatable or comma-separated")] = None,
    since: Annotated[str, Query(max_length=40, description="RFC3339 or epoch seconds")] = "",
) -> dict[str, Any]:
    flt = make_event_filter(node_id, kind or [], parse_since(since))
    result = await ctx.timeline.page(flt, page, page_size)
    return paged(result, [timeline_json(e) for e in result.items])
