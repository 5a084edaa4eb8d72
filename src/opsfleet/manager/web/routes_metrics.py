"""/api/v1/metrics: a node's latest samples, history, summary, and the fleet overview."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from opsfleet.common.durations import parse_duration
from opsfleet.common.errors import InvalidArgument
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok, rfc3339
from opsfleet.manager.web.schemas import bucket_json, sample_json, usage_json
from opsfleet.manager.web.security import CurrentUser

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"], route_class=AuditedRoute)

DEFAULT_HISTORY = 3600


def parse_time(value: str, field: str) -> int:
    """Unix seconds of an RFC3339 time with an offset (``2024-05-01T10:00:00Z``); 400 naming ``field``."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidArgument(f"{field} must be an RFC3339 time like 2024-05-01T10:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidArgument(f"{field} needs a time zone offset (Z or +hh:mm)")
    return int(moment.timestamp())


@router.get(
    "/nodes/{node_id}/latest", name="metrics.latest", summary="Latest cpu, memory, disk, network samples"
)
async def latest(node_id: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    found = await ctx.metric_queries.latest(node_id)
    return ok({t: sample_json(s) for t, s in found.items()})


@router.get(
    "/nodes/{node_id}/summary", name="metrics.summary", summary="min/max/avg/latest usage_percent per type"
)
async def summary(
    node_id: str,
    ctx: Ctx,
    _user: CurrentUser,
    duration: Annotated[str, Query(max_length=32, description="window like 30m, 1h, 7d or seconds")] = "1h",
) -> dict[str, Any]:
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise InvalidArgument(f"duration: {exc}") from None
    stats = await ctx.metric_queries.summary(node_id, seconds)
    data: dict[str, Any] = {}
    for t, (s, newest) in stats.items():
        latest_value = newest.values.get("usage_percent") if newest else None
        data[t] = {"min": s.min, "max": s.max, "avg": s.avg, "samples": s.samples, "latest": latest_value}
    return ok({"node_id": node_id, "duration": seconds, "summary": data})


@router.get(
    "/nodes/{node_id}/{metric_type}/history",
    name="metrics.history",
    summary="Samples over a time range: raw up to 6 h, averaged buckets (every key) beyond, span <= 30 d",
)
async def history(
    node_id: str,
    metric_type: str,
    ctx: Ctx,
    _user: CurrentUser,
    start_time: Annotated[
        str | None, Query(max_length=64, description="RFC3339; default end_time - 1h")
    ] = None,
    end_time: Annotated[str | None, Query(max_length=64, description="RFC3339; default now")] = None,
) -> dict[str, Any]:
    end = parse_time(end_time, "end_time") if end_time else int(time.time())
    start = parse_time(start_time, "start_time") if start_time else end - DEFAULT_HISTORY
    found = await ctx.metric_queries.history(node_id, metric_type, start, end)
    points = (
        [bucket_json(b) for b in found.buckets]
        if found.bucket_seconds
        else [{"timestamp": s.timestamp, "values": s.values} for s in found.samples]
    )
    return ok(
        {
            "node_id": node_id,
            "type": metric_type,
            "start_time": rfc3339(start),
            "end_time": rfc3339(end),
            "aggregated": bool(found.bucket_seconds),
            "bucket_seconds": found.bucket_seconds,
            "points": points,
            "count": len(points),
        }
    )


@router.get(
    "/cluster/overview", name="metrics.overview", summary="Fleet averages, per-node latest usage, top nodes"
)
async def overview(ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    o = await ctx.metric_queries.overview()
    return ok(
        {
            "nodes": {"total": o.total, "online": o.online, "offline": o.offline},
            "averages": o.averages,
            "node_usage": [usage_json(r) for r in o.nodes],
            "top_cpu": [usage_json(r) for r in o.top_cpu],
            "top_memory": [usage_json(r) for r in o.top_memory],
        }
    )
