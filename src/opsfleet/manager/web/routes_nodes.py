"""/api/v1/nodes: the fleet's nodes and their history (any signed-in user)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from opsfleet.manager.services.fleet import make_filter
from opsfleet.manager.services.paging import DEFAULT_PAGE_SIZE
from opsfleet.manager.services.timeline import make_event_filter
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok, paged, rfc3339
from opsfleet.manager.web.routes_admin import PageNo, PageSize
from opsfleet.manager.web.schemas import event_json, node_json
from opsfleet.manager.web.security import CurrentUser

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"], route_class=AuditedRoute)


@router.get("", name="nodes.list", summary="Nodes, paged, with status, label and text filters")
async def list_nodes(
    ctx: Ctx,
    _user: CurrentUser,
    page: PageNo = 1,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
    status: Annotated[str | None, Query(description="online or offline", max_length=16)] = None,
    label: Annotated[
        list[str] | None, Query(description="key=value, repeatable or comma-separated; all must match")
    ] = None,
    q: Annotated[str, Query(description="text in node_id, hostname or ip", max_length=128)] = "",
    ref: Annotated[
        str,
        Query(
            description="how an operator names a node: its exact id (wins), an id prefix or its hostname",
            max_length=128,
        ),
    ] = "",
) -> dict[str, Any]:
    result = await ctx.fleet.list_nodes(make_filter(status, label or [], q, ref), page, page_size)
    return paged(result, [node_json(n) for n in result.items])


@router.get("/statistics", name="nodes.statistics", summary="Node counts: total, online, offline")
async def statistics(ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    return ok({"statistics": await ctx.fleet.statistics()})


@router.get("/{node_id}", name="nodes.get", summary="One node")
async def get_node(node_id: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    data = node_json(await ctx.nodes.get(node_id))
    warning = ctx.identities.clone_warnings.get(node_id) if ctx.identities is not None else None
    data["clone_warning"] = {"at": rfc3339(warning.at), "detail": warning.detail} if warning else None
    return ok(data)


@router.get(
    "/{node_id}/events", name="nodes.events", summary="Registration and online/offline history, newest first"
)
async def node_events(
    node_id: str,
    ctx: Ctx,
    _user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[list[str] | None, Query(description="event kinds, repeatable or comma-separated")] = None,
) -> dict[str, Any]:
    if kind:
        await ctx.nodes.get(node_id)
        found = await ctx.timeline.page(make_event_filter(node_id, kind, 0.0), 1, min(limit, 100))
        events = [event for event, _hostname in found.items]
    else:
        events = await ctx.nodes.events(node_id, limit)
    return ok({"node_id": node_id, "events": [event_json(e) for e in events], "count": len(events)})
