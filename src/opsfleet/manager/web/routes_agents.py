"""/api/v1/nodes/{node_id}/agents: stored agents, live sync, operations, resource history, logs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from opsfleet.common.log_lines import parse_line
from opsfleet.manager.services.agent_ops import MAX_LOG_LINES, MAX_METRICS_DURATION
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok
from opsfleet.manager.web.schemas import OperateBody, agent_json, live_agent_json, operation_json, point_json
from opsfleet.manager.web.security import CurrentUser, OperatorUser

router = APIRouter(prefix="/api/v1/nodes/{node_id}/agents", tags=["agents"], route_class=AuditedRoute)


@router.get("", name="agents.list", summary="The node's agents as last stored (from daemon syncs)")
async def list_agents(node_id: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    agents = await ctx.agents.list_stored(node_id)
    return ok({"agents": [agent_json(a) for a in agents], "count": len(agents)})


@router.post("/sync", name="agents.sync", summary="Ask the daemon for its agents now and store them")
async def sync_agents(node_id: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    live = await ctx.agent_ops.sync_live(node_id)
    return ok({"agents": [live_agent_json(a) for a in live], "count": len(live)})


@router.get(
    "/operations", name="agents.operations", summary="Agent operations requested on this node, newest first"
)
async def operations(
    node_id: str,
    ctx: Ctx,
    _user: CurrentUser,
    agent_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    records = await ctx.agent_ops.operations(node_id, agent_id or None, limit)
    return ok({"operations": [operation_json(r) for r in records], "count": len(records)})


@router.post(
    "/{agent_id}/operate", name="agents.operate", summary="start, stop or restart an agent (operator, admin)"
)
async def operate(
    node_id: str, agent_id: str, body: OperateBody, request: Request, ctx: Ctx, user: OperatorUser
) -> dict[str, Any]:
    request.state.audit_detail = f"operation={body.operation}"
    record, live = await ctx.agent_ops.operate_and_report(node_id, agent_id, body.operation, user.username)
    data = {**operation_json(record), "agent": live_agent_json(live) if live is not None else None}
    return ok(data, "success" if record.success else "operation failed")


@router.get(
    "/{agent_id}/metrics", name="agents.metrics", summary="The agent's resource usage history from the daemon"
)
async def agent_metrics(
    node_id: str,
    agent_id: str,
    ctx: Ctx,
    _user: CurrentUser,
    duration: Annotated[int, Query(ge=1, le=MAX_METRICS_DURATION, description="seconds")] = 3600,
) -> dict[str, Any]:
    points = await ctx.agent_ops.agent_metrics(node_id, agent_id, duration)
    return ok({"agent_id": agent_id, "data_points": [point_json(p) for p in points], "count": len(points)})


@router.get("/{agent_id}/logs", name="agents.logs", summary="The agent's last log lines from the daemon")
async def agent_logs(
    node_id: str,
    agent_id: str,
    ctx: Ctx,
    _user: CurrentUser,
    lines: Annotated[int, Query(ge=1, le=MAX_LOG_LINES)] = 100,
    filter: Annotated[str, Query(max_length=256, description="only lines containing this text")] = "",
) -> dict[str, Any]:
    got = await ctx.agent_ops.agent_logs(node_id, agent_id, lines, filter)
    entries = [asdict(parse_line(line)) for line in got]
    return ok({"agent_id": agent_id, "lines": got, "entries": entries, "count": len(got)})
