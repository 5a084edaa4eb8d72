"""/api/v1/admin: users, the audit log and node deletion (admin role)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from opsfleet.manager.services.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok, paged
from opsfleet.manager.web.schemas import CreateUserBody, RoleBody, audit_json, user_json
from opsfleet.manager.web.security import AdminUser

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], route_class=AuditedRoute)

PageNo = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page (max {MAX_PAGE_SIZE})")]
UserId = Annotated[int, Path(ge=1, le=2**62, description="user id")]


@router.get("/users", name="admin.users.list", summary="Users, paged")
async def list_users(
    ctx: Ctx, _admin: AdminUser, page: PageNo = 1, page_size: PageSize = DEFAULT_PAGE_SIZE
) -> dict[str, Any]:
    result = await ctx.users.list(page, page_size)
    return paged(result, [user_json(u) for u in result.items])


@router.post("/users", name="admin.users.create", summary="Create a user", status_code=201)
async def create_user(body: CreateUserBody, request: Request, ctx: Ctx, _admin: AdminUser) -> dict[str, Any]:
    request.state.audit_target = f"user:{body.username}"
    request.state.audit_detail = f"role={body.role}"
    return ok(user_json(await ctx.users.create(body.username, body.password, body.role)), "created")


@router.post(
    "/users/{user_id}/disable", name="admin.users.disable", summary="Disable a user; its tokens stop working"
)
async def disable_user(user_id: UserId, request: Request, ctx: Ctx, admin: AdminUser) -> dict[str, Any]:
    request.state.audit_target = f"user_id:{user_id}"
    return ok(user_json(await ctx.users.set_disabled(admin, user_id, True)))


@router.post("/users/{user_id}/enable", name="admin.users.enable", summary="Enable a user")
async def enable_user(user_id: UserId, request: Request, ctx: Ctx, admin: AdminUser) -> dict[str, Any]:
    request.state.audit_target = f"user_id:{user_id}"
    return ok(user_json(await ctx.users.set_disabled(admin, user_id, False)))


@router.put("/users/{user_id}/role", name="admin.users.role", summary="Change a user's role")
@router.post("/users/{user_id}/role", name="admin.users.role", include_in_schema=False)
async def set_role(
    user_id: UserId, body: RoleBody, request: Request, ctx: Ctx, admin: AdminUser
) -> dict[str, Any]:
    request.state.audit_target = f"user_id:{user_id}"
    request.state.audit_detail = f"role={body.role}"
    return ok(user_json(await ctx.users.set_role(admin, user_id, body.role)))


@router.get("/audit", name="admin.audit", summary="The audit log of mutating requests, newest first")
async def audit_log(
    ctx: Ctx,
    _admin: AdminUser,
    page: PageNo = 1,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
    username: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:
    result = await ctx.audit.list(page, page_size, username=username, action=action)
    return paged(result, [audit_json(e) for e in result.items])


@router.delete(
    "/nodes/{node_id}",
    name="admin.nodes.delete",
    summary=(
        "Delete a node with its agents, events and metric samples and revoke its certificates; "
        "it may enroll and register again"
    ),
)
async def delete_node(node_id: str, ctx: Ctx, _admin: AdminUser) -> dict[str, Any]:
    data: dict[str, Any] = {"node_id": node_id, "deleted": True}
    if ctx.enrollment is not None:
        # First: from this moment on the node's certificates are refused.
        data["certificates_revoked"] = await ctx.enrollment.revoke_node(node_id)
    await ctx.fleet.delete_node(node_id)
    return ok(data, "deleted")
