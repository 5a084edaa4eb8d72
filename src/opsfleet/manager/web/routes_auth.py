"""/api/v1/auth: sign in, sign out, own profile, own password. There is no self-registration."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from opsfleet.manager.domain import User
from opsfleet.manager.services.auth import IssuedToken
from opsfleet.manager.web.audit_route import AuditedRoute
from opsfleet.manager.web.context import Ctx
from opsfleet.manager.web.envelope import ok, rfc3339
from opsfleet.manager.web.schemas import ChangePasswordBody, LoginBody, user_json
from opsfleet.manager.web.security import BearerToken, CurrentUser

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=AuditedRoute)


def _token_json(issued: IssuedToken, user: User) -> dict[str, Any]:
    return {
        "token": issued.token,
        "token_type": "Bearer",
        "expires_at": rfc3339(issued.expires_at),
        "user": user_json(user),
    }


@router.post("/login", name="auth.login", summary="Sign in; returns a bearer token")
async def login(body: LoginBody, request: Request, ctx: Ctx) -> dict[str, Any]:
    request.state.audit_user = body.username
    request.state.audit_target = f"user:{body.username}"
    address = request.client.host if request.client else ""
    issued, user = await ctx.auth.login(body.username, body.password, address)
    return ok(_token_json(issued, user))


@router.post(
    "/logout",
    name="auth.logout",
    summary="Revoke the presented token on every replica until it would have expired",
)
async def logout(request: Request, user: CurrentUser, token: BearerToken, ctx: Ctx) -> dict[str, Any]:
    request.state.audit_target = f"user:{user.username}"
    await ctx.auth.logout(token)
    return ok({"logged_out": True})


@router.get("/profile", name="auth.profile", summary="The signed-in user")
async def profile(user: CurrentUser) -> dict[str, Any]:
    return ok(user_json(user))


@router.post(
    "/change-password",
    name="auth.change_password",
    summary="Change your password; every older token stops working, a new one is returned",
)
async def change_password(
    body: ChangePasswordBody, request: Request, user: CurrentUser, ctx: Ctx
) -> dict[str, Any]:
    request.state.audit_target = f"user:{user.username}"
    issued, updated = await ctx.auth.change_password(user, body.old_password, body.new_password)
    return ok(_token_json(issued, updated))
