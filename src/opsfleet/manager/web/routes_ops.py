"""Operational endpoints without the envelope: /health, /ready, /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from opsfleet.common.errors import OpsfleetError
from opsfleet.manager.telemetry import CONTENT_TYPE
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import rfc3339

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process serves HTTP")
async def health() -> dict[str, Any]:
    return {"status": "ok", "time": rfc3339()}


@router.get("/ready", summary="Readiness: the database takes writes (200) or not (503)")
async def ready(ctx: Ctx) -> JSONResponse:
    """503 while writes fail (database locked by another process, disk full, database down).

    Answers from the outcome of the most recent writes while it is fresh, else from one
    bounded probe write; it never takes much more than a second. ``leader`` tells whether
    this replica runs the singleton work (docs/operations.md, "Several Manager replicas")."""
    lead = ctx.leadership
    role = {"leader": lead is not None and lead.is_leader, "election": lead.kind if lead else "single"}
    try:
        await ctx.store.check_writable()
    except Exception as exc:  # any failure to write means "not ready"
        message = exc.message if isinstance(exc, OpsfleetError) else f"database unreachable: {exc}"
        body = {"status": "unavailable", "error": message, **role, "time": rfc3339()}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", **role, "time": rfc3339()})


@router.get("/metrics", summary="Prometheus exposition of Manager internals and fleet gauges")
async def metrics(ctx: Ctx) -> Response:
    counts = await ctx.fleet.statistics()
    _, usage = await ctx.metric_queries.fleet_usage()
    rows = [(node_id, t, value) for node_id, per_type in usage.items() for t, (_, value) in per_type.items()]
    ctx.telemetry.set_fleet(counts, rows)
    return Response(ctx.telemetry.render(), media_type=CONTENT_TYPE)
