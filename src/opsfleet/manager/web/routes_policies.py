"""/api/v1/policies (central configuration) and /api/v1/nodes/{node_id}/config.

Anyone signed in reads; operators and admins write. Every write is audit-logged with the
diff it made (cut to the audit entry's size).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from opsfleet.manager.domain import PolicyRevision, PolicyRow
from opsfleet.manager.services.policies import PolicyChange, document_of
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok
from opsfleet.manager.web.security import CurrentUser, OperatorUser

AUDIT_DETAIL_CHARS = 1000

router = APIRouter(prefix="/api/v1/policies", tags=["policies"], route_class=AuditedRoute)
node_router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"], route_class=AuditedRoute)


class RollbackBody(BaseModel):
    revision: int = Field(ge=1)


def revision_json(rev: PolicyRevision) -> dict[str, Any]:
    return {
        "revision": rev.revision,
        "hash": rev.hash,
        "author": rev.author,
        "created_at": rev.created_at,
        "document": document_of(rev),
    }


def policy_json(row: PolicyRow) -> dict[str, Any]:
    doc = document_of(row.current)
    return {
        "name": row.name,
        "revision": row.current.revision,
        "hash": row.current.hash,
        "selector": doc.get("selector", {}),
        "priority": doc.get("priority", 0),
        "rollout": doc.get("rollout"),
        "rollout_paused": row.rollout_paused,
        "updated_at": row.updated_at,
        "document": doc,
    }


def _audited(request: Request, change: PolicyChange) -> dict[str, Any]:
    detail = change.diff if change.changed else "unchanged"
    if len(detail) > AUDIT_DETAIL_CHARS:
        detail = detail[:AUDIT_DETAIL_CHARS] + "\n... (diff cut; see the revisions)"
    request.state.audit_detail = detail
    request.state.audit_target = f"policy={change.row.name} revision={change.row.current.revision}"
    return {**policy_json(change.row), "changed": change.changed, "diff": change.diff}


@router.get("", name="policies.list", summary="Current policies")
async def list_policies(ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    rows = ctx.policies.current()
    out = []
    for row in rows:
        item = policy_json(row)
        item["counts"] = ctx.policies.status(row.name)["counts"]
        out.append(item)
    return ok({"policies": out, "count": len(out)})


@router.post("", name="policies.apply", summary="Create or update a policy (operator, admin)")
async def apply_policy(
    request: Request, ctx: Ctx, user: OperatorUser, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    change = await ctx.policies.apply(body, user.username)
    return ok(_audited(request, change), "policy updated" if change.changed else "policy unchanged")


@router.put("/{name}", name="policies.update", summary="Update a policy (operator, admin)")
async def update_policy(
    name: str, request: Request, ctx: Ctx, user: OperatorUser, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    change = await ctx.policies.apply({**body, "name": body.get("name", name)}, user.username)
    return ok(_audited(request, change), "policy updated" if change.changed else "policy unchanged")


@router.get("/{name}", name="policies.get", summary="A policy's current revision")
async def get_policy(name: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    return ok(policy_json(ctx.policies.get(name)))


@router.delete("/{name}", name="policies.delete", summary="Delete a policy; revisions kept (operator, admin)")
async def delete_policy(name: str, request: Request, ctx: Ctx, user: OperatorUser) -> dict[str, Any]:
    change = await ctx.policies.delete(name, user.username)
    request.state.audit_detail = change.diff[:AUDIT_DETAIL_CHARS]
    return ok({"name": name, "deleted": True, "diff": change.diff}, "policy deleted")


@router.get("/{name}/revisions", name="policies.revisions", summary="Every revision, oldest first")
async def list_revisions(name: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    revs = await ctx.policies.revisions(name)
    return ok({"name": name, "revisions": [revision_json(r) for r in revs], "count": len(revs)})


@router.get("/{name}/revisions/{revision}", name="policies.revision", summary="One revision")
async def get_revision(name: str, revision: int, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    return ok({"name": name, **revision_json(await ctx.policies.revision(name, revision))})


@router.get("/{name}/diff", name="policies.diff", summary="Unified diff between two revisions")
async def diff_revisions(
    name: str,
    ctx: Ctx,
    _user: CurrentUser,
    from_: Annotated[int, Query(alias="from", ge=1)],
    to: Annotated[int, Query(ge=1)],
) -> dict[str, Any]:
    diff = await ctx.policies.diff(name, from_, to)
    return ok({"name": name, "from": from_, "to": to, "diff": diff})


@router.post("/{name}/rollback", name="policies.rollback", summary="Make an old revision current (operator)")
async def rollback(
    name: str, body: RollbackBody, request: Request, ctx: Ctx, user: OperatorUser
) -> dict[str, Any]:
    change = await ctx.policies.rollback(name, body.revision, user.username)
    return ok(_audited(request, change), f"policy {name} is on revision {body.revision}")


@router.post("/{name}/resume", name="policies.resume", summary="Resume a halted rollout (operator, admin)")
async def resume(name: str, ctx: Ctx, _user: OperatorUser) -> dict[str, Any]:
    row = await ctx.policies.resume(name)
    return ok({**policy_json(row), "rollout": ctx.configs.rollout_view(name)}, "rollout resumed")


@router.get("/{name}/status", name="policies.status", summary="Per node: revision, config state, error")
async def status(name: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    return ok(ctx.policies.status(name))


@node_router.get(
    "/{node_id}/config", name="nodes.config", summary="The node's central config, hash, state, error"
)
async def node_config(node_id: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    await ctx.nodes.get(node_id)
    return ok(ctx.configs.node_view(node_id))
