"""/api/v1/rollouts: start a fleet rollout, follow it, pause, resume, cancel (operator, admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from opsfleet.manager.domain import Rollout, RolloutNode
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok, rfc3339
from opsfleet.manager.web.schemas import Body
from opsfleet.manager.web.security import CurrentUser, OperatorUser

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"], route_class=AuditedRoute)


class RolloutBody(Body):
    component: str = Field(max_length=160, description="daemon or agent:<id>")
    version: str = Field(max_length=64)
    selector: dict[str, str] = Field(default_factory=dict, description="node labels that must all match")
    max_parallel: str = Field(default="1", max_length=8, description="N nodes or P% of the nodes per batch")
    canary: int = Field(default=0, ge=0, le=1000, description="nodes updated first, before any batch")
    pause_on_failure: float = Field(
        default=0.0, ge=0, le=100, description="halt when failed + rolled-back nodes pass this percent"
    )


def rollout_json(rollout: Rollout, nodes: list[RolloutNode] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rollout.id,
        "component": rollout.component,
        "version": rollout.version,
        "artifact_id": rollout.artifact_id,
        "selector": rollout.selector,
        "max_parallel": rollout.max_parallel,
        "canary": rollout.canary,
        "pause_on_failure": rollout.pause_on_failure,
        "state": rollout.state.value,
        "message": rollout.message,
        "created_by": rollout.created_by,
        "created_at": rfc3339(rollout.created_at),
        "updated_at": rfc3339(rollout.updated_at),
    }
    if nodes is not None:
        data["nodes"] = [
            {
                "node_id": n.node_id,
                "canary": n.canary,
                "state": n.state.value,
                "message": n.message,
                "started_at": rfc3339(n.started_at) if n.started_at else None,
                "finished_at": rfc3339(n.finished_at) if n.finished_at else None,
            }
            for n in nodes
        ]
        counts: dict[str, int] = {}
        for n in nodes:
            counts[n.state.value] = counts.get(n.state.value, 0) + 1
        data["counts"] = counts
    return data


@router.post("", name="rollouts.start", summary="Start a rollout of a stored artifact (operator, admin)")
async def start(body: RolloutBody, request: Request, ctx: Ctx, user: OperatorUser) -> dict[str, Any]:
    request.state.audit_target = f"{body.component}@{body.version}"
    rollout, nodes = await ctx.rollouts.create(
        component=body.component,
        version=body.version,
        selector=body.selector,
        max_parallel=body.max_parallel,
        canary=body.canary,
        pause_on_failure=body.pause_on_failure,
        username=user.username,
    )
    request.state.audit_detail = f"rollout={rollout.id} nodes={len(nodes)}"
    return ok(rollout_json(rollout, nodes), "started")


@router.get("", name="rollouts.list", summary="Rollouts, newest first")
async def list_rollouts(
    ctx: Ctx, _user: CurrentUser, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    found = await ctx.rollouts.recent(limit)
    return ok({"rollouts": [rollout_json(r) for r in found], "count": len(found)})


@router.get("/{rollout_id}", name="rollouts.show", summary="One rollout with the state of each node")
async def show(rollout_id: int, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    rollout, nodes = await ctx.rollouts.get(rollout_id)
    return ok(rollout_json(rollout, nodes))


@router.post("/{rollout_id}/pause", name="rollouts.pause", summary="Pause after the current batch")
async def pause(rollout_id: int, ctx: Ctx, _user: OperatorUser) -> dict[str, Any]:
    return ok(rollout_json(await ctx.rollouts.pause(rollout_id)))


@router.post("/{rollout_id}/resume", name="rollouts.resume", summary="Resume a paused or halted rollout")
async def resume(rollout_id: int, ctx: Ctx, _user: OperatorUser) -> dict[str, Any]:
    return ok(rollout_json(await ctx.rollouts.resume(rollout_id)))


@router.post("/{rollout_id}/cancel", name="rollouts.cancel", summary="Cancel: no further node is updated")
async def cancel(rollout_id: int, ctx: Ctx, _user: OperatorUser) -> dict[str, Any]:
    return ok(rollout_json(await ctx.rollouts.cancel(rollout_id)))
